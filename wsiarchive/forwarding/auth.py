"""The bearer tokens of DICOMweb destinations: a token an operator keeps in an environment
variable or a file, or one the archive obtains by the OAuth 2.0 client credentials grant
(RFC 6749 §4.4) with Authlib, kept per process and fetched again before it expires."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

# A token this close to its expiry is not sent: a STOW-RS of a large instance takes time.
LEEWAY_SECONDS = 60
TIMEOUT = 10.0  # seconds for a token request


class TokenError(RuntimeError):
    """The destination's token could not be had (the reason says why)."""


@dataclass(frozen=True)
class ClientCredentials:
    """A confidential client of an authorization server, as a destination names it."""

    token_url: str
    client_id: str
    secret_env: str = ""  # where the client secret is: an environment variable...
    secret_file: str = ""  # ...or a file; never inline
    scope: str = ""
    auth_method: str = "client_secret_basic"  # or client_secret_post (RFC 6749 §2.3.1)
    params: tuple[tuple[str, str], ...] = ()  # more form fields of the request (resource...)

    def secret(self) -> str:
        if self.secret_env:
            return os.environ.get(self.secret_env, "").strip()
        return Path(self.secret_file).read_text().strip() if self.secret_file else ""


_tokens: dict[ClientCredentials, dict[str, object]] = {}
_lock = threading.Lock()


def static_token(env: str, file: str) -> str:
    """The token in environment variable *env* or file *file*, read each time (a rotated
    file is picked up); '' for none."""
    if env:
        return os.environ.get(env, "").strip()
    if file:
        return Path(file).read_text().strip()
    return ""


def client_token(client: ClientCredentials) -> str:
    """An access token for *client*, from this process's cache while it has over
    LEEWAY_SECONDS to live, else fetched from the token endpoint; TokenError when refused."""
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.oauth2.rfc6749 import OAuth2Token

    with _lock:
        held = _tokens.get(client)
        if held is not None and not OAuth2Token(held).is_expired(leeway=LEEWAY_SECONDS):
            return str(held["access_token"])
        session = OAuth2Session(
            client.client_id,
            client.secret(),
            scope=client.scope or None,
            token_endpoint_auth_method=client.auth_method,
        )
        try:
            token = session.fetch_token(
                client.token_url,
                grant_type="client_credentials",
                timeout=TIMEOUT,
                **dict(client.params),
            )
        except Exception as exc:  # Authlib's OAuthError, requests' errors, a bad JSON body
            raise TokenError(f"token request to {client.token_url} failed: {exc}") from exc
        finally:
            session.close()
        if not token.get("access_token"):
            raise TokenError(f"token request to {client.token_url} gave no access_token")
        _tokens[client] = dict(token)
        return str(token["access_token"])


def forget(client: ClientCredentials) -> None:
    """Drop *client*'s cached token (the destination refused it)."""
    with _lock:
        _tokens.pop(client, None)
