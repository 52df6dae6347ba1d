"""Bearer JWTs of an OpenID issuer: its discovery document and JWKS served over real HTTP on
loopback, tokens signed with real RSA keys; audience, issuer, expiry, algorithms, rotation,
and scopes and groups from the configured claims."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient

from storage.records import StoredInstance
from tests.dicomfiles import read
from tests.inprocess import client, open_at, store
from wsiarchive.settings import AnonymousAccess

AUDIENCE = "https://archive.test/dicomweb"


@dataclass
class Issuer:
    """A minimal OpenID issuer: discovery, JWKS, and keys to sign with."""

    url: str = ""
    keys: dict[str, Any] = field(default_factory=dict)  # kid -> private key
    published: list[str] = field(default_factory=list)
    jwks_fetches: int = 0

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            keys.append({**public, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, kid: str, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.url, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
        body.update(claims)
        return jwt.encode(body, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    state = Issuer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": state.url, "jwks_uri": state.url + "/jwks"}
            elif self.path == "/jwks":
                state.jwks_fetches += 1
                body = state.jwks()
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    state.add_key("k1")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()


@dataclass
class Site:
    web: FlaskClient
    leeds: StoredInstance
    christie: StoredInstance


@pytest.fixture
def site(tmp_path: Path, testdata: Path, issuer: Issuer) -> Iterator[Site]:
    archive, settings = open_at(
        tmp_path / "archive",
        access_group_attribute="InstitutionName",
        anonymous_access=AnonymousAccess.OFF,
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        oidc_groups_claim="groups",
        oidc_scope_prefix="wsiarchive.",
        oidc_key_refresh_seconds=0.0,  # a rotated key is fetched at once
    )
    slide = read(testdata / "dicom" / "wsi2dcm_jpeg.dcm")
    slide.InstitutionName = "LEEDS"
    xray = read(testdata / "radiology" / "pydicom_CT_small.dcm")
    xray.InstitutionName = "CHRISTIE"
    yield Site(client(archive, settings), store(archive, slide), store(archive, xray))
    archive.close()


def studies(site: Site, token: str) -> tuple[int, set[str]]:
    response = site.web.get("/dicomweb/studies", headers={"Authorization": f"Bearer {token}"})
    body = response.get_json(silent=True) if response.status_code == 200 else None
    found = {item["0020000D"]["Value"][0] for item in (body or [])}
    return response.status_code, found


def test_scopes_and_groups_come_from_the_claims(site: Site, issuer: Issuer) -> None:
    scope = "openid wsiarchive.read"
    assert studies(site, issuer.token("k1", scope=scope, groups=["LEEDS"])) == (
        200,
        {site.leeds.study},
    )
    # No groups claim: no study (the claim is configured); admin sees every group.
    assert studies(site, issuer.token("k1", scope=scope)) == (200, set())
    admin = issuer.token("k1", scope="wsiarchive.read wsiarchive.admin")
    assert studies(site, admin) == (200, {site.leeds.study, site.christie.study})
    # A scope without the configured prefix grants nothing.
    assert studies(site, issuer.token("k1", scope="read", groups=["LEEDS"]))[0] == 403


def test_invalid_tokens_are_401(site: Site, issuer: Issuer) -> None:
    good = {"scope": "wsiarchive.read", "groups": ["LEEDS"]}
    now = int(time.time())
    for claims in (
        {"aud": "https://elsewhere.test"},
        {"iss": "https://impostor.test"},
        {"exp": now - 120},  # beyond the 30 s leeway
        {"nbf": now + 120},
    ):
        assert studies(site, issuer.token("k1", **good, **claims))[0] == 401, claims
    # Within the leeway, a token just expired still counts.
    assert studies(site, issuer.token("k1", **good, exp=now - 5))[0] == 200
    # Signed by a key the issuer does not publish, or with HS256 using the public key as
    # the secret, or unsigned.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {"iss": issuer.url, "aud": AUDIENCE, "exp": now + 60, **good},
        other,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    unsigned = jwt.encode(
        {"iss": issuer.url, "aud": AUDIENCE, "exp": now + 60, **good},
        None,
        algorithm="none",
        headers={"kid": "k1"},
    )
    for token in (forged, unsigned):
        status = studies(site, token)[0]
        assert status == 401


def test_key_rotation_fetches_the_new_key_set(site: Site, issuer: Issuer) -> None:
    claims = {"scope": "wsiarchive.read", "groups": ["LEEDS"]}
    assert studies(site, issuer.token("k1", **claims))[0] == 200
    fetched = issuer.jwks_fetches
    issuer.add_key("k2")  # the issuer rotates: a new key is published and used
    assert studies(site, issuer.token("k2", **claims))[0] == 200
    assert issuer.jwks_fetches == fetched + 1
    issuer.published.remove("k1")  # the old key is withdrawn
    assert studies(site, issuer.token("k2", **claims))[0] == 200
