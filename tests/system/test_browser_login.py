"""The browser login in a real browser: Debian's Chromium driven by Playwright goes to /login,
through the real OpenID provider's authorization endpoint and back to /callback, and then
reads DICOMweb with the session cookie alone, which its scripts cannot see; a POST carrying
the cookie is accepted only from this server's own origin."""

from __future__ import annotations

import pytest
from dicomweb_client import DICOMwebClient

from tests.chromium import CHROMIUM, FLAGS
from tests.dicomfiles import read
from tests.oidc import archive_with_login


@pytest.fixture(scope="module")
def site(tmp_path_factory, testdata):
    with archive_with_login(tmp_path_factory.mktemp("browser")) as (server, provider):
        slide = read(testdata / "dicom" / "wsi2dcm_jpeg.dcm")
        slide.InstitutionName = "LEEDS"
        writer = {"Authorization": f"Bearer {provider.token(['write'])}"}
        DICOMwebClient(server.url, headers=writer).store_instances([slide])
        yield server, slide


def test_a_real_browser_logs_in_and_reads(site) -> None:
    from playwright.sync_api import sync_playwright

    server, slide = site
    origin = server.url[: -len("/dicomweb")]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(f"{origin}/login?next=/dicomweb/studies&login_hint=alice")
            assert page.url == f"{origin}/dicomweb/studies"
            assert slide.StudyInstanceUID in page.content()
            cookies = {c["name"]: c for c in page.context.cookies()}
            assert cookies["wsiarchive_session"]["httpOnly"] is True
            # Scripts cannot see the cookie (and API responses carry a CSP that lets no
            # script of theirs run: the viewer's pages will make these requests).
            assert "wsiarchive_session" not in page.evaluate("document.cookie")
            again = page.goto(f"{origin}/dicomweb/studies/{slide.StudyInstanceUID}/metadata")
            assert again is not None and again.status == 200
            assert again.headers["content-security-policy"].startswith("default-src 'none'")
            # The browser's cookie jar: a POST from this origin passes the CSRF check (and
            # then lacks the write scope), one from another origin does not.
            jar = page.context.request
            post = jar.post(f"{origin}/dicomweb/studies", headers={"Origin": origin})
            assert post.status == 403 and "write scope" in post.json()["error"]
            forged = jar.post(f"{origin}/dicomweb/studies", headers={"Origin": "https://evil.test"})
            assert forged.status == 403 and "this server's pages" in forged.json()["error"]
            # Logged out through the browser's cookie jar, not by loading the page /logout
            # sends it to: that page logs in again on its 401, and this provider grants a
            # login without a form, so the check would race a new session.
            out = jar.get(f"{origin}/logout", max_redirects=0)
            assert out.status == 303 and out.headers["location"] == "/"
            assert "wsiarchive_session" not in {c["name"] for c in page.context.cookies()}
            after = page.goto(f"{origin}/dicomweb/studies")
            assert after is not None and after.status == 401
        finally:
            browser.close()
