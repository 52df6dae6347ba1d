"""Exported files sent to another archive by STOW-RS (PS3.18 §10.5): one multipart/related
request per instance, its file streamed from disk, with a bearer token when one is given."""

from __future__ import annotations

import http.client
import secrets
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

CHUNK = 1 << 20  # bytes read from the file per write to the socket
TIMEOUT = 300.0  # seconds without progress before a request fails


class StowFailed(OSError):
    """The destination refused an instance (or could not be reached)."""


def _body(path: Path, boundary: str) -> tuple[bytes, bytes]:
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


def _chunks(path: Path, head: bytes, tail: bytes) -> Iterator[bytes]:
    yield head
    with open(path, "rb") as fp:
        while chunk := fp.read(CHUNK):
            yield chunk
    yield tail


def send(url: str, path: Path, token: str | None = None) -> int:
    """POST the Part-10 file *path* to *url*/studies; the HTTP status (200, or 202 with
    warnings). StowFailed for any other answer."""
    parts = urlsplit(url.rstrip("/") + "/studies")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--stow needs an http(s) URL of a DICOMweb service, not {url!r}")
    boundary = secrets.token_hex(16)
    head, tail = _body(path, boundary)
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Content-Length": str(len(head) + path.stat().st_size + len(tail)),
        "Accept": "application/dicom+json",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=TIMEOUT, context=context
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        connection.request("POST", parts.path, body=_chunks(path, head, tail), headers=headers)
        response = connection.getresponse()
        answer = response.read(4096)
    except OSError as exc:
        raise StowFailed(f"STOW-RS to {url} failed: {exc}") from exc
    finally:
        connection.close()
    if response.status not in (200, 202):
        text = answer.decode("utf-8", "replace")[:300]
        raise StowFailed(f"STOW-RS to {url} answered {response.status}: {text}")
    return response.status
