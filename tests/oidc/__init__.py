"""A real OpenID provider for the tests: panva's oidc-provider (provider.mjs) on loopback."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.servers import ArchiveServer, free_port

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "provider.mjs"
SCOPES = ("read", "write", "delete", "admin")


def signing_key() -> dict[str, str]:
    """A new RSA private key as a JWK (RFC 7517), made here, independently of the provider."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    return {**jwk, "kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"}


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636 4.1, 4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class OpenIDProvider:
    """The provider process: a confidential client for client_credentials, a public client
    for the authorization code flow with PKCE, JWT access tokens for *resource*."""

    root: Path
    resource: str = "http://127.0.0.1/dicomweb"
    redirect_uri: str = "http://127.0.0.1/callback"
    groups: tuple[str, ...] = ()
    account: str = "alice"
    client_id: str = "archive-tests"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    public_client_id: str = "viewer"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "oidc-provider.log"

    def start(self, timeout: float = 30) -> OpenIDProvider:
        node = shutil.which("node")
        if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError("node or tests/oidc/node_modules missing: ./scripts/setup.sh --test")
        self.root.mkdir(parents=True, exist_ok=True)
        jwks = self.root / "jwks.json"
        jwks.write_text(json.dumps({"keys": [signing_key()]}))
        command = [
            node,
            str(SCRIPT),
            f"--issuer={self.issuer}",
            f"--jwks={jwks}",
            f"--resource={self.resource}",
            f"--redirect-uri={self.redirect_uri}",
            f"--client-id={self.client_id}",
            f"--client-secret={self.client_secret}",
            f"--public-client-id={self.public_client_id}",
            f"--account={self.account}",
            f"--groups={','.join(self.groups)}",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"oidc-provider exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(self.discovery_url, timeout=2).ok:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"oidc-provider did not start: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> OpenIDProvider:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def discovery(self) -> dict:
        response = requests.get(self.discovery_url, timeout=10)
        response.raise_for_status()
        return response.json()

    def jwks(self) -> dict:
        response = requests.get(self.discovery()["jwks_uri"], timeout=10)
        response.raise_for_status()
        return response.json()

    def token(
        self,
        scopes: Iterable[str] = SCOPES,
        groups: Iterable[str] | None = None,
        audience: str | None = None,
        expires_in: int | None = None,
    ) -> str:
        """An access token (a JWT) by the client_credentials grant (RFC 6749 4.4) for the
        resource *audience* (RFC 8707); *groups* overrides the provider's default claim."""
        form = {
            "grant_type": "client_credentials",
            "scope": " ".join(scopes),
            "resource": audience or self.resource,
        }
        if groups is not None:
            form["groups"] = ",".join(groups)
        if expires_in is not None:
            form["expires_in"] = str(expires_in)
        response = requests.post(
            self.discovery()["token_endpoint"],
            data=form,
            auth=(self.client_id, self.client_secret),
            timeout=10,
        )
        if not response.ok:
            raise RuntimeError(f"token request: {response.status_code} {response.text}")
        return response.json()["access_token"]

    def authorization_code(
        self,
        scopes: Iterable[str] = ("openid", "read"),
        account: str | None = None,
        audience: str | None = None,
    ) -> dict:
        """The token response of a complete authorization code flow with PKCE S256 (RFC 6749
        4.1, RFC 7636) by the public client."""
        code, verifier = self.authorize(scopes, account, audience)
        response = self.exchange(code, verifier, audience)
        if not response.ok:
            raise RuntimeError(f"token request: {response.status_code} {response.text}")
        return response.json()

    def authorize(
        self,
        scopes: Iterable[str] = ("openid", "read"),
        account: str | None = None,
        audience: str | None = None,
    ) -> tuple[str, str]:
        """An authorization code and its PKCE verifier: the authorization request followed
        by plain HTTP redirects through the provider's (formless) login and consent."""
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        params = {
            "client_id": self.public_client_id,
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": audience or self.resource,
            "login_hint": account or self.account,
        }
        session = requests.Session()
        url = self.discovery()["authorization_endpoint"]
        response = session.get(url, params=params, allow_redirects=False, timeout=10)
        for _ in range(10):
            location = response.headers.get("Location", "")
            if response.status_code not in (302, 303) or location.startswith(self.redirect_uri):
                break
            url = location if location.startswith("http") else self.issuer + location
            response = session.get(url, allow_redirects=False, timeout=10)
        location = response.headers.get("Location", "")
        if not location.startswith(self.redirect_uri):
            raise RuntimeError(f"no redirect to the client: {response.status_code} {response.text}")
        query = parse_qs(urlsplit(location).query)
        if query.get("state") != [state] or "code" not in query:
            raise RuntimeError(f"authorization failed: {location}")
        return query["code"][0], verifier

    def exchange(self, code: str, verifier: str, audience: str | None = None) -> requests.Response:
        """The token request of the code flow (RFC 6749 4.1.3, RFC 7636 4.5)."""
        return requests.post(
            self.discovery()["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "client_id": self.public_client_id,
                "code_verifier": verifier,
                "resource": audience or self.resource,
            },
            timeout=10,
        )

    def rotate(self) -> list[str]:
        """Make a new signing key the active one; the old ones stay published. The kids,
        active first."""
        return self._keys("rotate")

    def drop_old(self) -> list[str]:
        """Unpublish every key but the active one."""
        return self._keys("drop-old")

    def _keys(self, action: str) -> list[str]:
        response = requests.post(f"{self.issuer}/_test/{action}", timeout=30)
        response.raise_for_status()
        return response.json()["kids"]


@contextlib.contextmanager
def openid_provider(root: Path, **options: object) -> Iterator[OpenIDProvider]:
    """A started provider, stopped on leaving."""
    provider = OpenIDProvider(root, **options)  # type: ignore[arg-type]
    with provider:
        yield provider


@contextlib.contextmanager
def archive_with_login(
    root: Path, groups: tuple[str, ...] = ("LEEDS",), **settings: str
) -> Iterator[tuple[ArchiveServer, OpenIDProvider]]:
    """A provider, and an archive server that needs tokens, takes this provider's JWTs, logs
    browsers in through it (its /callback registered at the provider) and splits studies
    into access groups by InstitutionName; both stopped on leaving."""
    port = free_port()
    callback = f"http://127.0.0.1:{port}/callback"
    with openid_provider(root, redirect_uri=callback, groups=groups) as provider:
        server = ArchiveServer(
            root / "data",
            {
                "anonymous_access": "off",
                "access_group_attribute": "InstitutionName",
                "oidc_issuer": provider.issuer,
                "oidc_audience": provider.resource,
                "oidc_groups_claim": "groups",
                "oidc_client_id": provider.public_client_id,
                **settings,
            },
            port=port,
        ).start()
        try:
            yield server, provider
        finally:
            server.stop()
