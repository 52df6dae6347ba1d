"""OpenID Connect bearer JWTs: verified with PyJWT against the issuer's discovery document and
JWKS (keys refetched when an unknown key id appears), audience, issuer, expiry with leeway and
an algorithm allow-list; scopes and access groups read from configurable claims."""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from storage.access import Principal, PrincipalKind, Scope

log = logging.getLogger(__name__)
DISCOVERY = "/.well-known/openid-configuration"  # OpenID Connect Discovery 1.0 §4
JWKS_LIFESPAN = 300  # seconds the key set is reused before it is fetched again
FETCH_TIMEOUT = 10  # seconds


class OidcConfig(Protocol):
    """The settings of bearer-JWT verification (declared in wsiarchive's settings)."""

    @property
    def oidc_issuer(self) -> str: ...
    @property
    def oidc_audience(self) -> str: ...
    @property
    def oidc_algorithms(self) -> str: ...
    @property
    def oidc_leeway_seconds(self) -> int: ...
    @property
    def oidc_scope_claim(self) -> str: ...
    @property
    def oidc_scope_prefix(self) -> str: ...
    @property
    def oidc_groups_claim(self) -> str: ...
    @property
    def oidc_subject_claim(self) -> str: ...
    @property
    def oidc_key_refresh_seconds(self) -> float: ...


class InvalidToken(Exception):
    """A bearer token that is not a valid JWT of the issuer (the reason says why)."""


def _words(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, Iterable):
        return [str(item) for item in value]
    return []


@dataclass
class _Keys:
    issuer: str
    client: jwt.PyJWKClient


class OidcVerifier:
    """Verifies bearer JWTs of one issuer."""

    def __init__(self, config: OidcConfig) -> None:
        if not config.oidc_audience:
            raise ValueError("oidc_issuer needs oidc_audience: the audience its tokens name")
        self.config = config
        self.issuer = config.oidc_issuer.rstrip("/")
        self.algorithms = config.oidc_algorithms.split()
        if not self.algorithms or any(
            a.lower() == "none" or a.startswith("HS") for a in self.algorithms
        ):
            # Symmetric algorithms would let anyone holding the public JWKS forge tokens.
            raise ValueError("oidc_algorithms must name asymmetric JWS algorithms only")
        self._keys: _Keys | None = None
        self._lock = threading.Lock()

    def _discovered(self) -> _Keys:
        with self._lock:
            if self._keys is None:
                url = self.issuer + DISCOVERY
                with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:  # noqa: S310
                    document = json.load(response)
                if document.get("issuer", "").rstrip("/") != self.issuer:
                    raise InvalidToken(f"the discovery document at {url} names another issuer")
                client = jwt.PyJWKClient(
                    document["jwks_uri"],
                    cache_keys=True,
                    lifespan=JWKS_LIFESPAN,
                    timeout=FETCH_TIMEOUT,
                    cooldown_duration=self.config.oidc_key_refresh_seconds,
                )
                self._keys = _Keys(document["issuer"], client)
            return self._keys

    def verify(self, token: str) -> Principal:
        """The principal a JWT names; InvalidToken when it is not valid now."""
        try:
            keys = self._discovered()
            # An unknown kid makes PyJWKClient fetch the key set again (key rotation).
            key = keys.client.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=self.algorithms,
                audience=self.config.oidc_audience,
                issuer=keys.issuer,
                leeway=self.config.oidc_leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except InvalidToken:
            raise
        except (jwt.PyJWTError, OSError, ValueError, KeyError) as exc:
            raise InvalidToken(f"the bearer token is not valid: {exc}") from exc
        return self.principal(claims)

    def principal(self, claims: dict[str, Any]) -> Principal:
        """Scopes and groups from the configured claims."""
        config = self.config
        prefix = config.oidc_scope_prefix
        words = [
            w[len(prefix) :]
            for w in _words(claims.get(config.oidc_scope_claim))
            if w.startswith(prefix)
        ]
        scopes = Scope.parse(words)
        groups: frozenset[str] | None = None
        if config.oidc_groups_claim and Scope.ADMIN not in scopes:
            groups = frozenset(_words(claims.get(config.oidc_groups_claim)))
        subject = str(claims.get(config.oidc_subject_claim) or claims.get("sub") or "")
        return Principal(
            f"oidc:{subject}",
            PrincipalKind.OIDC,
            scopes,
            groups,
            display=str(claims.get("name", "")),
        )
