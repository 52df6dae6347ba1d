"""What the viewer benchmark and its system test share: the page (dicom-microscopy-viewer from
web/node_modules) on a static origin of its own, a self-signed certificate, Debian's Chromium
with DevTools network throttling, and one measured visit of a slide."""

from __future__ import annotations

import datetime
import ipaddress
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.chromium import FLAGS as TEST_FLAGS

REPO = Path(__file__).resolve().parent.parent
DMV = REPO / "web/node_modules/dicom-microscopy-viewer/dist"
DWC = REPO / "web/node_modules/dicomweb-client/build/dicomweb-client.js"
PAGE = Path(__file__).resolve().parent / "viewer_page.html"
VIEWPORT = {"width": 1920, "height": 1080}
# The tests' flags, and WebGL (the viewer's tile layers) without a GPU; trusted_flags() adds
# the trust of a self-signed certificate.
FLAGS = [*TEST_FLAGS, "--enable-unsafe-swiftshader"]
# A page on its own origin may read every server without CORS (Orthanc has none).
NO_CORS = ["--disable-web-security"]


def trusted_flags(cert: Path) -> list[str]:
    """FLAGS, trusting *cert*'s key as if a CA had signed it. (--ignore-certificate-errors
    would not do: Chromium does not cache responses that came with a certificate error.)"""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    spki = base64.b64encode(hashlib.sha256(der).digest()).decode()
    return [*FLAGS, f"--ignore-certificate-errors-spki-list={spki}"]


@dataclass(frozen=True)
class Network:
    """DevTools throttling (Network.emulateNetworkConditions): Chromium adds *latency_ms* to
    every request (not to each connection's TCP and TLS handshakes) and shares the
    throughput among the requests in flight."""

    latency_ms: float = 40
    down_mbit: float = 50
    up_mbit: float = 50

    def conditions(self) -> dict[str, Any]:
        return {
            "offline": False,
            "latency": self.latency_ms,
            "downloadThroughput": self.down_mbit * 1e6 / 8,
            "uploadThroughput": self.up_mbit * 1e6 / 8,
        }


HOME = Network()


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Quiet(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm"}

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextmanager
def page_site(directory: Path) -> Iterator[str]:
    """The page and the viewer's files on a static origin of their own; yields the page URL."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in [*DMV.iterdir(), DWC]:
        if source.is_file() and not (directory / source.name).exists():
            (directory / source.name).symlink_to(source)
    worker = directory / "dataLoader.worker.min.js"  # the name the bundle asks for
    if not worker.exists():
        worker.symlink_to(DMV / "dataLoader.worker.bundle.min.js")
    (directory / "index.html").write_bytes(PAGE.read_bytes())
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def visit(
    browser: Any,
    page_url: str,
    root: str,
    study: str,
    series: str,
    network: Network | None = HOME,
    revisit: bool = True,
) -> dict[str, Any]:
    """One pathologist's visit in a new browser context (a cold cache and new connections):
    open the slide at its base level, pan one viewport width, and (*revisit*) open it again
    in a second tab of the same context (the browser's cache warm). Each step has the page's
    timings and ``responses``: what DevTools saw of every DICOMweb response (protocol,
    status, from cache)."""
    context = browser.new_context(viewport=VIEWPORT, ignore_https_errors=True)
    try:
        result: dict[str, Any] = {}
        for name in ("open", "revisit") if revisit else ("open",):
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda m, c=console: c.append(m.text) if m.type == "error" else None)
            responses: list[dict[str, Any]] = []
            session = context.new_cdp_session(page)
            session.on("Network.responseReceived", partial(_response, root, responses))
            session.on("Network.loadingFinished", partial(_finished, responses))
            session.send("Network.enable")
            if network is not None:
                session.send("Network.emulateNetworkConditions", network.conditions())
            page.goto(page_url)
            opened = page.evaluate("([r, s, e]) => openSlide(r, s, e)", [root, study, series])
            result[name] = opened
            if name == "open":
                seen = len(responses)
                result["pan"] = page.evaluate("() => pan()")
                result["pan"]["responses"] = responses[seen:]
                del responses[seen:]
            opened["responses"] = responses
            opened["console_errors"] = console[:20]
        return result
    finally:
        context.close()


def _response(root: str, into: list[dict[str, Any]], event: dict[str, Any]) -> None:
    response = event["response"]
    if response["url"].startswith(root) and event.get("type") != "Preflight":  # CORS's own
        into.append(
            {
                "id": event["requestId"],
                "url": response["url"][len(root) :],
                "status": response["status"],
                "protocol": response.get("protocol", ""),
                "cached": bool(response.get("fromDiskCache") or response.get("fromPrefetchCache")),
                "bytes": 0,  # set when it has finished loading
                "headers": {
                    k.lower(): v
                    for k, v in response.get("headers", {}).items()
                    if k.lower() in ("etag", "cache-control", "content-encoding")
                },
            }
        )


def _finished(into: list[dict[str, Any]], event: dict[str, Any]) -> None:
    """The bytes over the line (headers and encoded body) of a response, once loaded."""
    for entry in reversed(into):
        if entry["id"] == event["requestId"]:
            entry["bytes"] = int(event.get("encodedDataLength", 0))
            return


def frame_responses(step: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in step["responses"] if "/frames/" in r["url"]]
