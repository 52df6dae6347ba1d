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
from dicomweb.service import PREFIX, Service

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


def install(app: Flask, service: Service, verifier: OidcVerifier, config: LoginConfig) -> None:
    """The login routes, when an issuer and a browser client are configured."""
    signer = URLSafeTimedSerializer(config.session_secret, salt="wsiarchive-login")

    def origin() -> str:
        return service.root()[: -len(PREFIX)]

    def secure() -> bool:
        return origin().startswith("https:")

    @app.get("/login")
    def login() -> Response:
        state, code_verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        query = {
            "client_id": config.oidc_client_id,
            "response_type": "code",
            "redirect_uri": origin() + "/callback",
            "scope": config.oidc_login_scopes,
            "state": state,
            "code_challenge": _challenge(code_verifier),
            "code_challenge_method": "S256",
            # RFC 8707: the archive as the resource, so the token names it as its audience.
            "resource": verifier.config.oidc_audience,
        }
        if request.args.get("login_hint"):
            query["login_hint"] = request.args["login_hint"]
        url = verifier.endpoint("authorization_endpoint") + "?" + urllib.parse.urlencode(query)
        response = redirect(url, 302)
        flow = signer.dumps([state, code_verifier, _local(request.args.get("next"))])
        response.set_cookie(
            FLOW, flow, max_age=FLOW_SECONDS, httponly=True, secure=secure(), samesite="Lax"
        )
        return response

    @app.get("/callback")
    def callback() -> Response:
        try:
            state, code_verifier, target = signer.loads(
                request.cookies.get(FLOW, ""), max_age=FLOW_SECONDS
            )
        except BadSignature as exc:
            raise HTTPError(400, "no login is in progress (or it took too long)") from exc
        if request.args.get("error"):
            raise HTTPError(401, f"the issuer refused the login: {request.args['error']}")
        if not secrets.compare_digest(request.args.get("state", ""), state):
            raise HTTPError(400, "the login's state does not match (RFC 6749 §10.12)")
        form = urllib.parse.urlencode(
            {
                "grant_type": "authorization_code",
                "code": request.args.get("code", ""),
                "redirect_uri": origin() + "/callback",
                "client_id": config.oidc_client_id,
                "code_verifier": code_verifier,
                "resource": verifier.config.oidc_audience,
            }
        ).encode()
        exchange = urllib.request.Request(verifier.endpoint("token_endpoint"), data=form)
        try:
            with urllib.request.urlopen(exchange, timeout=FETCH_TIMEOUT) as answer:  # noqa: S310
                token = str(json.load(answer)["access_token"])
            claims = verifier.claims(token)
        except (OSError, KeyError, ValueError, InvalidToken) as exc:
            raise HTTPError(401, "the issuer's token could not be obtained or verified") from exc
        response = redirect(target, 303)
        lifetime = max(int(claims.get("exp", 0)) - int(time.time()), 0)
        response.set_cookie(
            SESSION, token, max_age=lifetime, httponly=True, secure=secure(), samesite="Lax"
        )
        response.delete_cookie(FLOW)
        return response

    @app.get("/logout")
    def logout() -> Response:
        response = redirect("/", 303)
        response.delete_cookie(SESSION)
        return response
