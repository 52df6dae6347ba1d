"""Destination tokens by the client credentials grant, from a real OpenID provider (panva's
oidc-provider on loopback): cached while they have time to live, fetched again near their
expiry or once refused, and a refusal is an error that says so."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from tests.oidc import openid_provider
from wsiarchive.forwarding.auth import ClientCredentials, TokenError, client_token, forget


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory):
    with openid_provider(tmp_path_factory.mktemp("oidc")) as running:
        yield running


def _client(provider, secret: Path, **params: str) -> ClientCredentials:
    return ClientCredentials(
        provider.discovery()["token_endpoint"],
        provider.client_id,
        secret_file=str(secret),
        scope="read write",
        params=tuple(sorted({"resource": provider.resource, **params}.items())),
    )


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_tokens_are_kept_until_near_expiry(provider, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(provider.client_secret)
    lasting = _client(provider, secret)
    first = client_token(lasting)
    assert client_token(lasting) == first  # 300 s to live: kept
    claims = _claims(first)
    assert claims["aud"] == provider.resource and set(claims["scope"].split()) == {"read", "write"}
    forget(lasting)
    assert client_token(lasting) != first  # dropped (refused by the destination): asked again
    brief = _client(provider, secret, expires_in="61")
    token = client_token(brief)
    time.sleep(1.2)  # now within the 60 s leeway
    renewed = client_token(brief)
    assert renewed != token and _claims(renewed)["jti"] != _claims(token)["jti"]


def test_a_refused_client_is_an_error_naming_the_request(provider, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("wrong")
    with pytest.raises(TokenError, match="token request to .* failed: invalid_client"):
        client_token(_client(provider, secret))


def test_a_401_drops_the_token(provider, tmp_path: Path) -> None:
    from wsiarchive.forwarding.config import Destination, Kind

    secret = tmp_path / "secret"
    secret.write_text(provider.client_secret)
    destination = Destination("d", Kind.DICOMWEB, url="http://d", client=_client(provider, secret))
    first = destination.token()
    assert destination.token() == first
    destination.token_refused()  # what stow() does on a 401
    assert destination.token() != first
