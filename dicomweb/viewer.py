"""The built-in browser viewer: the study list at /, the study view at /study/<uid>, the
build's static files under /viewer/static and the pages' runtime configuration; pages carry
their own Content-Security-Policy (the API's forbids every script)."""

from __future__ import annotations

import json
import mimetypes
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

from flask import Blueprint, Flask, Response, abort, request, send_file

from dicomweb.http.compression import accepts_gzip
from dicomweb.http.errors import HTTPError
from dicomweb.identity.authenticate import PUBLIC_BLUEPRINT, Authenticator
from dicomweb.service import PREFIX, Service
from storage.access import PrincipalKind

STATIC = "/viewer/static"  # web/build.mjs writes this prefix into the pages
CONFIG = "/viewer/config.json"
# The checkout's build (web/build.mjs, run by scripts/setup.sh).
CHECKOUT_BUILD = Path(__file__).resolve().parent.parent / "web" / "dist"
# CSP Level 3 for the pages: scripts and workers of this origin only (dicom-microscopy-viewer
# and Cornerstone3D compile their wasm codecs: 'wasm-unsafe-eval'; their workers and tiles
# use blob: URLs), data from this origin only, never framed. OpenLayers and Cornerstone3D set
# style attributes from script, hence style-src 'unsafe-inline' (styles run no code).
PAGE_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "img-src 'self' blob: data:",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# The decoding workers' own policy (a worker runs under its script's response's CSP, CSP3
# §4.2.4): their emscripten codecs (embind) build functions from strings, so they need
# 'unsafe-eval', which the pages never get. A worker has no DOM to inject script into.
WORKER_CSP = PAGE_CSP.replace(
    "script-src 'self' 'wasm-unsafe-eval'", "script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'"
)
WORKERS = frozenset({"dmv/dataLoader.worker.min.js", "decodeImageFrameWorker.js"})
# Everything under a build's static path is named by the build id: it never changes.
IMMUTABLE = f"max-age={365 * 24 * 3600}, immutable"
PAGE_CACHE = "no-cache"  # a page names the current build: always revalidated (ETag)
_BUILD_ID = re.compile(r"[0-9a-f]{8,64}")
MISSING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wsiarchive: viewer not built</title></head>
<body><h1>The viewer is not built</h1>
<p>This server serves the built-in browser viewer from <code>{where}</code>, which holds no
build. Run <code>./scripts/setup.sh</code> in the checkout (it builds <code>web/dist</code> with
<code>npm run --prefix web build</code>), or point the <code>viewer_dir</code> setting at a
build. DICOMweb is served at <a href="{root}">{root}</a> all the same.</p></body></html>
"""


class ViewerConfig(Protocol):
    """The viewer's settings (declared in wsiarchive's settings)."""

    @property
    def viewer(self) -> bool: ...

    @property
    def viewer_dir(self) -> str: ...


def _page_headers(response: Response, policy: str = PAGE_CSP) -> Response:
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Frame-Options"] = "DENY"
    return response


@dataclass(frozen=True)
class Build:
    """One build of web/: its folder and id (dist/manifest.json)."""

    folder: Path

    @cached_property
    def id(self) -> str | None:  # noqa: A003
        try:
            found = json.loads((self.folder / "manifest.json").read_text())["build"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return found if isinstance(found, str) and _BUILD_ID.fullmatch(found) else None

    def page(self, name: str) -> bytes | None:
        try:
            return (self.folder / name).read_bytes()
        except OSError:
            return None


class Viewer:
    """The viewer's routes over one build."""

    def __init__(
        self, service: Service, config: ViewerConfig, who: Authenticator, login: bool
    ) -> None:
        self.service = service
        self.build = Build(Path(config.viewer_dir) if config.viewer_dir else CHECKOUT_BUILD)
        self.authenticator = who
        self.login = login

    def _page(self, name: str) -> Response:
        body = self.build.page(name) if self.build.id else None
        if body is None:
            text = MISSING.format(where=self.build.folder, root=PREFIX)
            response = Response(text, 503, content_type="text/html; charset=utf-8")
            response.headers["Retry-After"] = "3600"
            response.headers["Cache-Control"] = "no-store"
            return _page_headers(response)
        response = Response(body, content_type="text/html; charset=utf-8")
        response.headers["Cache-Control"] = PAGE_CACHE
        response.add_etag()
        response.make_conditional(request)  # in place: 304 on a matching If-None-Match
        return _page_headers(response)

    def studies(self) -> Response:
        return self._page("index.html")

    def study(self, uid: str) -> Response:
        del uid  # the page reads it from its address
        return self._page("study.html")

    def config(self) -> Response:
        user = None
        try:
            principal = self.authenticator.principal()
            if principal.kind != PrincipalKind.ANONYMOUS:
                user = principal.display or principal.subject
        except HTTPError:
            pass  # no identity: the pages log in on their first 401
        body = {
            "dicomweb": self.service.root(),
            "build": self.build.id,
            "login": self.login,
            "loginUrl": "/login",
            "logoutUrl": "/logout",
            "user": user,
        }
        response = Response(json.dumps(body), content_type="application/json")
        response.headers["Cache-Control"] = "no-store"  # names who is logged in
        return response

    def static(self, build: str, path: str) -> Response:
        if build != self.build.id:
            abort(404)  # an old build's page asks for files this server no longer has
        root = (self.build.folder / "static" / build).resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file() or target.suffix == ".gz":
            abort(404)
        media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if target.suffix == ".mjs":
            media_type = "text/javascript"
        headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
        packed = target.with_name(target.name + ".gz")
        if accepts_gzip(request.headers.get("Accept-Encoding")) and packed.is_file():
            target = packed
            headers["Content-Encoding"] = "gzip"
        response = send_file(target, mimetype=media_type, etag=f"{build}-{target.name}")
        response.headers.update(headers)
        del response.headers["Content-Disposition"]
        return _page_headers(response, WORKER_CSP if path in WORKERS else PAGE_CSP)


def install(
    app: Flask, service: Service, config: ViewerConfig, who: Authenticator, login: bool
) -> None:
    """Serve the viewer (unless the viewer setting is off): its pages and files need no
    identity (they hold no patient data); what they show comes from DICOMweb, which does."""
    if not config.viewer:
        return
    viewer = Viewer(service, config, who, login)
    blueprint = Blueprint(PUBLIC_BLUEPRINT, __name__)
    blueprint.add_url_rule("/", "studies", viewer.studies, methods=["GET"])
    blueprint.add_url_rule("/study/<uid>", "study", viewer.study, methods=["GET"])
    blueprint.add_url_rule(CONFIG, "config", viewer.config, methods=["GET"])
    blueprint.add_url_rule(
        f"{STATIC}/<build>/<path:path>", "static", viewer.static, methods=["GET"]
    )
    app.register_blueprint(blueprint)
