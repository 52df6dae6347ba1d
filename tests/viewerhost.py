"""A viewer's web host on another loopback origin: static files (OHIF's prebuilt dist, the
dicom-microscopy-viewer page) served the way a single-page app's host serves them, with the
client routes falling back to index.html and a few files replaced (the app's configuration)."""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.servers import free_port

WEB = Path(__file__).resolve().parents[1] / "web"
OHIF_DIST = WEB / "vendor" / "ohif" / "dist"  # unpacked by scripts/setup.sh --test
NODE_MODULES = WEB / "node_modules"

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")


@dataclass
class ViewerHost:
    """Serves *mounts* (URL prefix -> folder) and *overrides* (path -> bytes) on loopback;
    a GET that matches no file and looks like a client route (no extension) gets
    *fallback* (index.html), as OHIF's own serve.json rewrites it."""

    mounts: dict[str, Path]
    overrides: dict[str, bytes] = field(default_factory=dict)
    fallback: str | None = "/index.html"
    port: int = field(default_factory=free_port)
    # The origin a browser sees; "localhost" makes it another origin than the archive's
    # 127.0.0.1 even without another port.
    host: str = "localhost"

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def resolve(self, path: str) -> Path | None:
        for prefix, folder in sorted(self.mounts.items(), key=lambda m: -len(m[0])):
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                relative = path[len(prefix.rstrip("/")) :].lstrip("/") or "index.html"
                candidate = (folder / relative).resolve()
                if candidate.is_relative_to(folder.resolve()) and candidate.is_file():
                    return candidate
        return None

    @contextmanager
    def running(self) -> Iterator[ViewerHost]:
        host = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802 (the http.server convention)
                path = self.path.split("?", 1)[0].split("#", 1)[0]
                body = host.overrides.get(path)
                kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
                if body is None:
                    found = host.resolve(path)
                    if found is None and host.fallback and "." not in path.rsplit("/", 1)[-1]:
                        found = host.resolve(host.fallback)
                        kind = "text/html"
                    if found is None:
                        self.send_error(404)
                        return
                    body = found.read_bytes()
                    kind = mimetypes.guess_type(found.name)[0] or kind
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                # OHIF's SharedArrayBuffer decoders want a cross-origin isolated page when
                # available; it works without, so nothing is sent that would change it.
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


def part10(path: Path) -> bytes:
    """*path* as a Part-10 file: the radiology test files without a preamble and File Meta
    Information (Implicit VR Little Endian) get both, so that STOW-RS accepts them."""
    import io

    import pydicom
    from pydicom.uid import ImplicitVRLittleEndian

    raw = path.read_bytes()
    if raw[128:132] == b"DICM":
        return raw
    dataset = pydicom.dcmread(io.BytesIO(raw), force=True)
    dataset.file_meta = pydicom.dataset.FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()
