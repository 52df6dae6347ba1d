"""The one authentication step of every request: a bearer token (API token, share link or
OpenID Connect JWT, RFC 6750) or configured anonymous access; else 401 with a challenge."""

from __future__ import annotations

import functools
import ipaddress
import logging
from typing import Protocol

from flask import Flask, g, request

from dicomweb.http.errors import HTTPError
from dicomweb.identity import login
from dicomweb.identity.login import SESSION, LoginConfig
from dicomweb.identity.oidc import InvalidToken, OidcConfig, OidcVerifier
from dicomweb.service import Service
from storage.access import Principal, PrincipalKind, Scope

log = logging.getLogger(__name__)
REALM = "wsiarchive"
# The blueprint whose routes need no identity: the built-in viewer's pages and files (no
# patient data; what they show comes from DICOMweb, which authenticates).
PUBLIC_BLUEPRINT = "viewer"


class IdentityConfig(OidcConfig, LoginConfig, Protocol):
    """The identity settings of the web front door (declared in wsiarchive's settings)."""

    @property
    def anonymous_access(self) -> str: ...
    @property
    def anonymous_scopes(self) -> str: ...


def _challenge(error: str | None = None, description: str = "") -> dict[str, str]:
    # RFC 6750 §3: the WWW-Authenticate challenge, with error codes of §3.1.
    value = f'Bearer realm="{REALM}"'
    if error:
        value += f', error="{error}"'
    if description:
        value += ', error_description="' + description.replace('"', "'").replace("\\", "/") + '"'
    return {"WWW-Authenticate": value}


@functools.lru_cache(maxsize=1024)
def loopback(address: str | None) -> bool:
    """True when *address* is a loopback address (this machine)."""
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Authenticator:
    """Turns a request's credentials into a principal."""

    def __init__(self, service: Service, config: IdentityConfig) -> None:
        self.service = service
        self.anonymous = config.anonymous_access
        self.anonymous_principal = Principal(
            "anonymous",
            PrincipalKind.ANONYMOUS,
            Scope.parse(config.anonymous_scopes.split()),
        )
        self.oidc = OidcVerifier(config) if config.oidc_issuer else None

    def principal(self) -> Principal:
        source = request.remote_addr or ""
        header = request.headers.get("Authorization", "")
        if not header and self.oidc is not None and request.cookies.get(SESSION):
            found = self._session(request.cookies[SESSION])
            if found is not None:
                return found.at(source)
        if not header:
            if self.anonymous == "anywhere" or (
                self.anonymous == "loopback" and loopback(request.remote_addr)
            ):
                return self.anonymous_principal.at(source)
            raise HTTPError(401, "this archive needs a bearer token", _challenge())
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HTTPError(
                401,
                "credentials must be a bearer token (RFC 6750)",
                _challenge("invalid_request", "expected Authorization: Bearer <token>"),
            )
        found = self.service.archive.authenticate_token(token)
        if found is not None:
            return found.at(source)
        if self.oidc is not None and token.count(".") == 2:
            try:
                return self.oidc.verify(token).at(source)
            except InvalidToken as exc:
                log.info("refused a bearer JWT from %s: %s", source, exc)
        raise HTTPError(
            401,
            "the bearer token is not valid (unknown, expired or revoked)",
            _challenge("invalid_token", "the token is unknown, expired or revoked"),
        )

    def _session(self, token: str) -> Principal | None:
        """The principal of a browser session's cookie. A cookie is sent by the browser on
        its own, so a request that changes something must come from this server's own
        pages: its Origin must be ours (a cross-site request forgery is refused, 403)."""
        assert self.oidc is not None
        try:
            found = self.oidc.verify(token)
        except InvalidToken:
            return None  # expired: as if there were no session
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("Origin", "")
            if origin != self.service.origin():
                raise HTTPError(403, "a session cookie is only accepted from this server's pages")
        return found


def install(
    app: Flask, service: Service, config: IdentityConfig, authenticator: Authenticator
) -> None:
    """Authenticate every request with *authenticator* before its transaction runs."""
    if config.anonymous_access == "anywhere":
        log.warning(
            "ANONYMOUS ACCESS FROM ANYWHERE: every client that reaches this server may %s "
            "every study without an identity (anonymous_access = anywhere)",
            config.anonymous_scopes,
        )
    elif config.anonymous_access == "loopback":
        log.warning(
            "anonymous access from this machine: clients on loopback may %s every study "
            "without an identity (anonymous_access = loopback)",
            config.anonymous_scopes,
        )

    if authenticator.oidc is not None and config.oidc_client_id:
        login.install(app, service, authenticator.oidc, config)

    @app.before_request
    def _authenticate() -> None:
        if request.endpoint in ("login", "callback", "logout"):
            return
        if request.blueprint == PUBLIC_BLUEPRINT:
            return
        if request.method == "OPTIONS":
            return  # CORS preflights and capabilities describe the service, not patient data
        g.principal = authenticator.principal()
