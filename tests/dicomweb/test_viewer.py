"""The viewer's blueprint in process: its pages, their policy and caching, the build's files
(immutable, gzip, no way out of the build), the runtime configuration, and the viewer off or
not built. A build of its own is written here; tests/system/test_viewer.py runs the real one."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from dicomweb import create_app
from dicomweb.viewer import CHECKOUT_BUILD, PAGE_CSP, STATIC, WORKER_CSP
from tests.inprocess import BASE_URL, open_at
from wsiarchive.settings import AnonymousAccess

BUILD_ID = "0123456789abcdef"
SCRIPT = b"export const answer = 42;\n" * 100  # above the build's gzip threshold


def write_build(folder: Path) -> Path:
    """A build as web/build.mjs lays it out, small."""
    static = folder / "static" / BUILD_ID
    (static / "dmv").mkdir(parents=True)
    for page in ("index.html", "study.html"):
        (folder / page).write_text(
            f"<!doctype html><script src='{STATIC}/{BUILD_ID}/list.js'></script>{page}"
        )
    (static / "list.js").write_bytes(SCRIPT)
    (static / "list.js.gz").write_bytes(gzip.compress(SCRIPT))
    (static / "dmv" / "dataLoader.worker.min.js").write_bytes(b"self.onmessage = () => {}")
    (folder / "manifest.json").write_text(json.dumps({"build": BUILD_ID}))
    (folder / "secret.txt").write_text("not under static")
    return folder


@pytest.fixture
def web(tmp_path: Path):
    def make(**values):
        archive, settings = open_at(tmp_path / "archive", **values)
        return create_app(archive, settings).test_client()

    return make


@pytest.fixture
def built(tmp_path: Path) -> Path:
    return write_build(tmp_path / "dist")


@pytest.mark.parametrize("path", ["/", "/study/1.2.3.4", "/?study=1.2.3.4"])
def test_the_pages_carry_their_own_policy(web, built: Path, path: str) -> None:
    client = web(viewer_dir=str(built))
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    name = "study.html" if path.startswith("/study/") else "index.html"
    assert response.data == (built / name).read_bytes()
    policy = response.headers["Content-Security-Policy"]
    assert policy == PAGE_CSP
    directives = dict(d.split(" ", 1) for d in policy.split("; "))
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"  # no eval, no inline
    assert directives["worker-src"] == "'self' blob:"
    assert directives["connect-src"] == "'self'"
    assert directives["img-src"] == "'self' blob: data:"
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "private, no-cache"
    again = client.get(path, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_pages_and_files_need_no_identity_but_dicomweb_does(web, built: Path) -> None:
    client = web(viewer_dir=str(built), anonymous_access=AnonymousAccess.OFF)
    assert client.get("/dicomweb/studies").status_code == 401
    assert client.get("/").status_code == 200
    assert client.get(f"{STATIC}/{BUILD_ID}/list.js").status_code == 200
    config = client.get("/viewer/config.json")
    assert config.status_code == 200
    assert config.json == {
        "dicomweb": BASE_URL,
        "build": BUILD_ID,
        "login": False,  # no OpenID issuer and browser client configured
        "loginUrl": "/login",
        "logoutUrl": "/logout",
        "user": None,
    }
    assert config.headers["Cache-Control"] == "no-store"
    # The API keeps its own policy.
    assert (
        client.get("/dicomweb/studies")
        .headers["Content-Security-Policy"]
        .startswith("default-src 'none'")
    )


def test_the_build_files_are_immutable_and_gzipped_for_who_accepts_it(web, built: Path) -> None:
    client = web(viewer_dir=str(built))
    url = f"{STATIC}/{BUILD_ID}/list.js"
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.data == SCRIPT and "Content-Encoding" not in plain.headers
    assert plain.mimetype == "text/javascript"
    assert plain.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert "Accept-Encoding" in plain.headers["Vary"]
    assert "Content-Disposition" not in plain.headers
    assert plain.headers["Content-Security-Policy"] == PAGE_CSP
    packed = client.get(url, headers={"Accept-Encoding": "gzip, br"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.data) == SCRIPT
    assert packed.headers["ETag"] != plain.headers["ETag"]  # two representations
    again = client.get(
        url, headers={"Accept-Encoding": "gzip", "If-None-Match": packed.headers["ETag"]}
    )
    assert again.status_code == 304


def test_only_the_decoding_workers_may_eval(web, built: Path) -> None:
    client = web(viewer_dir=str(built))
    worker = client.get(f"{STATIC}/{BUILD_ID}/dmv/dataLoader.worker.min.js")
    assert worker.status_code == 200
    assert worker.headers["Content-Security-Policy"] == WORKER_CSP
    assert "'unsafe-eval'" in WORKER_CSP.split("; ")[1]
    assert "'unsafe-eval'" not in PAGE_CSP


@pytest.mark.parametrize(
    "path",
    [
        f"{STATIC}/{BUILD_ID}/../../secret.txt",
        f"{STATIC}/{BUILD_ID}/%2e%2e/%2e%2e/secret.txt",
        f"{STATIC}/{BUILD_ID}/list.js.gz",  # the packed copies are representations only
        f"{STATIC}/{BUILD_ID}/missing.js",
        f"{STATIC}/fedcba9876543210/list.js",  # another build's
        f"{STATIC}/{BUILD_ID}/dmv",
    ],
)
def test_nothing_outside_the_build_is_served(web, built: Path, path: str) -> None:
    assert web(viewer_dir=str(built)).get(path).status_code == 404


def test_without_a_build_the_pages_say_how_to_make_one(web, tmp_path: Path) -> None:
    client = web(viewer_dir=str(tmp_path / "nowhere"))
    response = client.get("/")
    assert response.status_code == 503
    assert b"./scripts/setup.sh" in response.data
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    assert client.get("/study/1.2.3").status_code == 503
    assert client.get("/dicomweb/studies").status_code == 200  # DICOMweb all the same


def test_a_broken_manifest_counts_as_no_build(web, built: Path) -> None:
    (built / "manifest.json").write_text(json.dumps({"build": "../../etc"}))
    assert web(viewer_dir=str(built)).get("/").status_code == 503


def test_the_viewer_setting_off_leaves_no_viewer(web, built: Path) -> None:
    client = web(viewer_dir=str(built), viewer=False)
    for path in ("/", "/study/1.2.3", "/viewer/config.json", f"{STATIC}/{BUILD_ID}/list.js"):
        assert client.get(path).status_code == 404
    assert client.get("/dicomweb/studies").status_code == 200


def test_the_default_build_is_the_checkouts(web) -> None:
    assert Path(__file__).resolve().parents[2] / "web" / "dist" == CHECKOUT_BUILD
    if not (CHECKOUT_BUILD / "manifest.json").is_file():
        pytest.skip("web/dist is not built (./scripts/setup.sh builds it)")
    client = web()
    page = client.get("/study/1.2.3")
    assert page.status_code == 200
    build = json.loads((CHECKOUT_BUILD / "manifest.json").read_text())["build"]
    # Every file the real pages name is served.
    for name in ("study.js", "style.css", "dmv/dicomMicroscopyViewer.bundle.min.js"):
        assert f"{STATIC}/{build}/{name}".encode() in page.data
        assert client.get(f"{STATIC}/{build}/{name}").status_code == 200
    for name in ("decodeImageFrameWorker.js", "dmv/dataLoader.worker.min.js"):
        assert (
            client.get(f"{STATIC}/{build}/{name}").headers["Content-Security-Policy"] == WORKER_CSP
        )
