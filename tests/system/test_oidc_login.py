"""OpenID Connect against a real provider (panva's oidc-provider on loopback): the archive
serves what a JWT's scopes and groups allow, refuses tokens for another audience, and keeps
accepting tokens across a rotation of the provider's signing key."""

from __future__ import annotations

import time

import pytest
import requests
from dicomweb_client import DICOMwebClient

from tests.dicomfiles import read
from tests.oidc import archive_with_login

SLIDE = "dicom/wsi2dcm_jpeg.dcm"
XRAY = "radiology/pydicom_CT_small.dcm"


@pytest.fixture(scope="module")
def site(tmp_path_factory, testdata):
    root = tmp_path_factory.mktemp("oidc")
    with archive_with_login(root, oidc_key_refresh_seconds="1") as (server, provider):
        slide, xray = read(testdata / SLIDE), read(testdata / XRAY)
        slide.InstitutionName, xray.InstitutionName = "LEEDS", "CHRISTIE"
        writer = provider.token(["write", "admin"])
        stored = DICOMwebClient(server.url, headers={"Authorization": f"Bearer {writer}"})
        stored.store_instances([slide, xray])
        yield server, provider, slide, xray


def studies(server, token: str) -> tuple[int, set[str]]:
    response = requests.get(
        f"{server.url}/studies", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    found = response.json() if response.status_code == 200 else []
    return response.status_code, {item["0020000D"]["Value"][0] for item in found}


def test_scopes_and_groups_of_a_real_issuer(site) -> None:
    server, provider, slide, xray = site
    assert studies(server, provider.token(["read"], groups=["LEEDS"])) == (
        200,
        {slide.StudyInstanceUID},
    )
    assert studies(server, provider.token(["read"], groups=["CHRISTIE", "LEEDS"]))[1] == {
        slide.StudyInstanceUID,
        xray.StudyInstanceUID,
    }
    assert studies(server, provider.token(["write"], groups=["LEEDS"]))[0] == 403
    other = provider.token(["read"], groups=["LEEDS"], audience="https://elsewhere.test/")
    assert studies(server, other)[0] == 401
    expired = provider.token(["read"], groups=["LEEDS"], expires_in=1)
    time.sleep(2)
    assert studies(server, expired)[0] == 200  # within the 30 s leeway


def test_signing_key_rotation(site) -> None:
    server, provider, slide, _ = site
    before = provider.token(["read"], groups=["LEEDS"])
    assert studies(server, before)[0] == 200
    provider.rotate()
    time.sleep(1.2)  # oidc_key_refresh_seconds
    after = provider.token(["read"], groups=["LEEDS"])
    assert studies(server, after) == (200, {slide.StudyInstanceUID})
    assert studies(server, before)[0] == 200  # the old key is still published
    provider.drop_old()
    time.sleep(1.2)
    assert studies(server, provider.token(["read"], groups=["LEEDS"]))[0] == 200


def test_authorization_code_with_pkce_gives_a_token_the_archive_accepts(site) -> None:
    server, provider, slide, _ = site
    answer = provider.authorization_code(["openid", "read"])
    assert studies(server, answer["access_token"])[0] == 200


def test_browser_login_by_authorization_code_with_pkce(site) -> None:
    server, provider, slide, _ = site
    origin = server.url[: -len("/dicomweb")]
    browser = requests.Session()
    # /login -> the issuer's authorization endpoint -> (formless) login and consent ->
    # /callback?code=... -> the page asked for, with the session cookie set.
    landed = browser.get(
        f"{origin}/login", params={"next": "/dicomweb/studies", "login_hint": "alice"}, timeout=20
    )
    assert landed.url == f"{origin}/dicomweb/studies" and landed.status_code == 200
    assert [s["0020000D"]["Value"][0] for s in landed.json()] == [slide.StudyInstanceUID]
    cookie = next(c for c in browser.cookies if c.name == "wsiarchive_session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.port is None
    # A page of another site cannot make the browser store with its cookie (CSRF).
    forged = browser.post(f"{origin}/dicomweb/studies", headers={"Origin": "https://evil.test"})
    assert forged.status_code == 403 and "this server's pages" in forged.json()["error"]
    own = browser.post(f"{origin}/dicomweb/studies", headers={"Origin": origin})
    assert own.status_code == 403 and "write scope" in own.json()["error"]  # read only
    # After logout the cookie is gone and the archive asks for a token again.
    browser.get(f"{origin}/logout", timeout=10)
    assert browser.get(f"{origin}/dicomweb/studies", timeout=10).status_code == 401


def test_login_never_redirects_off_site(site) -> None:
    server, _, _, _ = site
    origin = server.url[: -len("/dicomweb")]
    browser = requests.Session()
    landed = browser.get(
        f"{origin}/login", params={"next": "//evil.test/x", "login_hint": "alice"}, timeout=20
    )
    assert landed.url.startswith(origin + "/")
    # A callback without a login in progress, or with another state, is refused.
    assert requests.get(f"{origin}/callback?code=x&state=y", timeout=10).status_code == 400
