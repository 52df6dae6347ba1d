"""The tests' OpenID provider itself: discovery, JWT access tokens (RFC 9068) that PyJWT
verifies against the published JWKS, key rotation, and the code flow with PKCE."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
import requests

from tests.oidc import OpenIDProvider, pkce_pair

RESOURCE = "http://127.0.0.1:9/dicomweb"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory):
    with OpenIDProvider(
        tmp_path_factory.mktemp("oidc"), resource=RESOURCE, groups=("pathology",)
    ) as instance:
        yield instance


@pytest.fixture
def own_provider(tmp_path):
    """A provider of the test's own, for tests that change its keys."""
    with OpenIDProvider(tmp_path, resource=RESOURCE) as instance:
        yield instance


def verify(provider: OpenIDProvider, token: str, audience: str = RESOURCE) -> dict:
    """The claims of *token*, checked as a resource server would (RFC 9068 4): signature by a
    key of the issuer's JWKS, typ at+jwt, iss, aud, exp."""
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    client = jwt.PyJWKClient(provider.discovery()["jwks_uri"], cache_jwk_set=False)
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        audience=audience,
        issuer=provider.issuer,
        options={"require": ["iss", "aud", "exp", "iat", "sub", "client_id", "jti"]},
    )


def test_discovery(provider):
    metadata = provider.discovery()
    assert metadata["issuer"] == provider.issuer
    assert "client_credentials" in metadata["grant_types_supported"]
    assert "authorization_code" in metadata["grant_types_supported"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    keys = provider.jwks()["keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "RSA"
    assert "d" not in keys[0]  # the private part stays private


def test_client_credentials_token_is_a_verifiable_jwt(provider):
    claims = verify(provider, provider.token(["read", "write"], groups=["pathology", "qa"]))
    assert claims["scope"] == "read write"
    assert claims["groups"] == ["pathology", "qa"]
    assert claims["client_id"] == provider.client_id
    assert claims["exp"] > time.time()


def test_default_groups_and_scopes_outside_the_resource_are_dropped(provider):
    claims = verify(provider, provider.token(["read", "unknown"]))
    assert claims["groups"] == ["pathology"]
    assert claims["scope"] == "read"


def test_other_audience_is_not_accepted_for_this_resource(provider):
    token = provider.token(["read"], audience="http://127.0.0.1:9/other")
    with pytest.raises(jwt.InvalidAudienceError):
        verify(provider, token)
    assert verify(provider, token, audience="http://127.0.0.1:9/other")["aud"]


def test_tampered_token_fails(provider):
    header, payload, signature = provider.token(["read"]).split(".")
    forged = jwt.decode(f"{header}.{payload}.{signature}", options={"verify_signature": False})
    forged["scope"] = "read admin"
    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verify(provider, f"{header}.{body}.{signature}")


def test_expired_token_fails(provider):
    token = provider.token(["read"], expires_in=1)
    time.sleep(1.1)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(provider, token)


def test_wrong_client_secret_is_refused(provider):
    response = requests.post(
        provider.discovery()["token_endpoint"],
        data={"grant_type": "client_credentials", "scope": "read", "resource": RESOURCE},
        auth=(provider.client_id, "wrong"),
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_rotation_publishes_the_new_key_and_keeps_the_old_until_dropped(own_provider):
    old_token = own_provider.token(["read"])
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    kids = own_provider.rotate()
    assert kids[1:] == [old_kid] and kids[0] != old_kid
    assert [key["kid"] for key in own_provider.jwks()["keys"]] == kids
    new_token = own_provider.token(["read"])
    assert jwt.get_unverified_header(new_token)["kid"] == kids[0]
    verify(own_provider, new_token)
    verify(own_provider, old_token)  # still published
    assert own_provider.drop_old() == kids[:1]
    assert [key["kid"] for key in own_provider.jwks()["keys"]] == kids[:1]
    with pytest.raises(jwt.PyJWKClientError):
        verify(own_provider, old_token)
    verify(own_provider, new_token)


def test_authorization_code_flow_with_pkce_gives_a_jwt(provider):
    response = provider.authorization_code(["openid", "read", "write"], account="bob")
    assert response["token_type"] == "Bearer"
    claims = verify(provider, response["access_token"])
    assert claims["sub"] == "bob"
    assert claims["client_id"] == provider.public_client_id
    assert claims["scope"] == "read write"
    assert claims["groups"] == ["pathology"]


def test_code_with_the_wrong_pkce_verifier_is_refused(provider):
    code, _ = provider.authorize(["openid", "read"])
    other_verifier, _ = pkce_pair()
    response = provider.exchange(code, other_verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
