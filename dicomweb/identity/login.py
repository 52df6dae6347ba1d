"""Browser login against the OpenID issuer by the authorization code flow with PKCE (RFC 6749
§4.1, RFC 7636 S256): /login, /callback and /logout. The access token the issuer grants is
kept in an HttpOnly, SameSite=Lax session cookie, verified like any bearer token."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import urllib.parse
import urllib.request
from typing import Protocol

from flask import Flask, redirect, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from dicomweb.http.errors import HTTPError
from dicomweb.identity.oidc import FETCH_TIMEOUT, InvalidToken, OidcVerifier
from dicomweb.service import Service

SESSION = "wsiarchive_session"  # the access token
FLOW = "wsiarchive_login"  # state, PKCE verifier and where to go back to, signed
FLOW_SECONDS = 600  # a login must come back within this long


class LoginConfig(Protocol):
    """The settings of the browser login (declared in wsiarchive's settings)."""

    @property
    def oidc_client_id(self) -> str: ...
    @property
    def oidc_login_scopes(self) -> str: ...
    @property
    def session_secret(self) -> str: ...


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _local(target: str | None) -> str:
    """Where to go after login: a path of this server only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class Login:
    """The three routes of the browser login, over one issuer."""

    def __init__(self, service: Service, verifier: OidcVerifier, config: LoginConfig) -> None:
        self.service, self.verifier, self.config = service, verifier, config
        self.signer = URLSafeTimedSerializer(config.session_secret, salt="wsiarchive-login")

    def _cookie(self, response: Response, name: str, value: str, seconds: int) -> None:
        secure = self.service.origin().startswith("https:")
        response.set_cookie(
            name, value, max_age=seconds, httponly=True, secure=secure, samesite="Lax"
        )

    def _common(self, verifier_or_challenge: dict[str, str]) -> dict[str, str]:
        return {
            "client_id": self.config.oidc_client_id,
            "redirect_uri": self.service.origin() + "/callback",
            # RFC 8707: the archive as the resource, so the token names it as its audience.
            "resource": self.verifier.config.oidc_audience,
            **verifier_or_challenge,
        }

    def login(self) -> Response:
        state, code_verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        query = self._common(
            {
                "response_type": "code",
                "scope": self.config.oidc_login_scopes,
                "state": state,
                "code_challenge": _challenge(code_verifier),
                "code_challenge_method": "S256",
            }
        )
        if request.args.get("login_hint"):
            query["login_hint"] = request.args["login_hint"]
        endpoint = self.verifier.endpoint("authorization_endpoint")
        response = redirect(endpoint + "?" + urllib.parse.urlencode(query), 302)
        flow = self.signer.dumps([state, code_verifier, _local(request.args.get("next"))])
        self._cookie(response, FLOW, flow, FLOW_SECONDS)
        return response

    def _flow(self) -> tuple[str, str, str]:
        try:
            state, code_verifier, target = self.signer.loads(
                request.cookies.get(FLOW, ""), max_age=FLOW_SECONDS
            )
        except BadSignature as exc:
            raise HTTPError(400, "no login is in progress (or it took too long)") from exc
        if request.args.get("error"):
            raise HTTPError(401, f"the issuer refused the login: {request.args['error']}")
        if not secrets.compare_digest(request.args.get("state", ""), state):
            raise HTTPError(400, "the login's state does not match (RFC 6749 §10.12)")
        return state, code_verifier, target

    def callback(self) -> Response:
        _, code_verifier, target = self._flow()
        form = self._common(
            {
                "grant_type": "authorization_code",
                "code": request.args.get("code", ""),
                "code_verifier": code_verifier,
            }
        )
        exchange = urllib.request.Request(
            self.verifier.endpoint("token_endpoint"), data=urllib.parse.urlencode(form).encode()
        )
        try:
            with urllib.request.urlopen(exchange, timeout=FETCH_TIMEOUT) as answer:  # noqa: S310
                token = str(json.load(answer)["access_token"])
            claims = self.verifier.claims(token)
        except (OSError, KeyError, ValueError, InvalidToken) as exc:
            raise HTTPError(401, "the issuer's token could not be obtained or verified") from exc
        response = redirect(target, 303)
        self._cookie(response, SESSION, token, max(int(claims.get("exp", 0)) - int(time.time()), 0))
        response.delete_cookie(FLOW)
        return response

    def logout(self) -> Response:
        response = redirect("/", 303)
        response.delete_cookie(SESSION)
        return response


def install(app: Flask, service: Service, verifier: OidcVerifier, config: LoginConfig) -> None:
    """The login routes, when an issuer and a browser client are configured."""
    routes = Login(service, verifier, config)
    app.add_url_rule("/login", "login", routes.login)
    app.add_url_rule("/callback", "callback", routes.callback)
    app.add_url_rule("/logout", "logout", routes.logout)
