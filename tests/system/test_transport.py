"""Transport against real servers: HTTPS with HTTP/2 negotiated by ALPN (curl), uploads that
stall without taking searches down, CORS and the size limit over real HTTP."""

from __future__ import annotations

import socket
import subprocess
import time
import warnings
from pathlib import Path

import pytest
import requests
from urllib3.exceptions import InsecureRequestWarning

from tests.dicomfiles import frames, multipart_body, parse_multipart, read

JPEG = "dicom/wsi2dcm_jpeg.dcm"
OCTETS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    certificate, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(certificate), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return certificate, key


def _fetch(url: str, *options: str, accept: str = OCTETS, out: Path) -> tuple[str, str]:
    """curl *url*: (negotiated HTTP version, response headers); the body goes to *out*."""
    done = subprocess.run(
        ["curl", "-sSk", "-D", str(out) + ".headers", "-o", str(out), "-w", "%{http_version}",
         "-H", f"Accept: {accept}", *options, url],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip(), Path(str(out) + ".headers").read_text()


def test_https_negotiates_http2_and_serves_frames(fresh_server, testdata, tmp_path) -> None:
    assert "HTTP2" in subprocess.run(["curl", "-V"], capture_output=True, text=True).stdout
    certificate, key = _certificate(tmp_path)
    server = fresh_server(https_certificate=str(certificate), https_key=str(key), workers=1)
    assert server.url.startswith("https://")
    body, content_type = multipart_body([(testdata / JPEG).read_bytes()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureRequestWarning)
        stored = requests.post(
            server.url + "/studies",
            data=body,
            headers={"Content-Type": content_type},
            verify=False,
        )
    assert stored.status_code == 200, stored.text
    dataset = read(testdata / JPEG)
    url = (
        f"{server.url}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}/frames/1,2"
    )
    out = tmp_path / "frames"
    version, headers = _fetch(url, "--http2", out=out)
    assert version == "2"  # h2 by ALPN over TLS
    assert headers.startswith("HTTP/2 200")
    content_type_header = next(
        line.split(":", 1)[1].strip()
        for line in headers.splitlines()
        if line.lower().startswith("content-type:")
    )
    parts = parse_multipart(content_type_header, out.read_bytes())
    assert [part for _, part in parts] == frames(testdata / JPEG)[:2]  # pydicom's reading
    assert "strict-transport-security: max-age=" in headers.lower()
    version, headers = _fetch(url, "--http1.1", out=out)
    assert version == "1.1" and headers.startswith("HTTP/1.1 200")
    # Plain HTTP to the TLS port gets no answer an HTTP client accepts.
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url.replace("https://", "http://") + "/studies", timeout=5)


def _stall(port: int) -> socket.socket:
    """A STOW-RS request that sends its headers and the start of its body, then nothing."""
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall(
        b"POST /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Type: multipart/related; type="application/dicom"; boundary=b\r\n'
        b"Content-Length: 1000000\r\n\r\n--b\r\nContent-Type: application/dicom\r\n\r\nDICM"
    )
    return connection


def test_stalled_uploads_leave_threads_for_searches(fresh_server) -> None:
    """Was: ten uploads that stop sending held every request thread, and no search was
    answered again until they disconnected."""
    server = fresh_server(workers=1, threads=4, max_uploads=2)
    stalled = [_stall(server.port) for _ in range(10)]
    try:
        time.sleep(0.5)
        started = time.monotonic()
        response = requests.get(server.url + "/studies", timeout=10)
        assert response.status_code == 200
        assert time.monotonic() - started < 3
        # Beyond the upload slots, uploads are refused at once.
        refused = 0
        for connection in stalled:
            connection.settimeout(0.5)
            try:
                head = connection.recv(4096)
            except TimeoutError:
                continue  # holds a slot
            if head.startswith(b"HTTP/1.1 503"):
                assert b"retry-after: " in head.lower()
                refused += 1
        assert refused == 8
    finally:
        for connection in stalled:
            connection.close()


def test_cors_over_real_http(fresh_server) -> None:
    origin = "http://127.0.0.1:9"  # another loopback origin
    server = fresh_server(cors_origins=origin)
    preflight = requests.options(
        server.url + "/studies",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 204 and preflight.content == b""
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    response = requests.get(server.url + "/studies", headers={"Origin": origin})
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "Origin" in response.headers["Vary"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Server"] == "wsiarchive"  # not granian's name


def test_a_chunked_upload_over_the_limit_gets_413(fresh_server, testdata) -> None:
    data = (testdata / JPEG).read_bytes()
    body, content_type = multipart_body([data])
    server = fresh_server(max_request_bytes=str(len(body) // 2))

    def chunks():  # a generator: requests sends it with Transfer-Encoding: chunked
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = requests.post(
        server.url + "/studies", data=chunks(), headers={"Content-Type": content_type}
    )
    assert response.status_code == 413
    assert "larger than the limit" in response.json()["error"]
    assert requests.get(server.url + "/instances").json() == []
