"""Exported files sent to another archive by STOW-RS (PS3.18 §10.5): one multipart/related
request per instance, its file streamed from disk in the forwarder's body, with a bearer token
when one is given."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import requests

from wsiarchive.forwarding.stow import TIMEOUT, Body

CHUNK = 1 << 20  # bytes read from the file at a time


class StowFailed(OSError):
    """The destination refused an instance (or could not be reached)."""


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fp:
        while chunk := fp.read(CHUNK):
            yield chunk


def send(url: str, path: Path, token: str | None = None) -> int:
    """POST the Part-10 file *path* to *url*/studies; the HTTP status (200, or 202 with
    warnings). StowFailed for any other answer."""
    parts = urlsplit(url.rstrip("/") + "/studies")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--stow needs an http(s) URL of a DICOMweb service, not {url!r}")
    boundary = secrets.token_hex(16)
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = Body(_chunks(path), path.stat().st_size, boundary)
    try:
        response = requests.post(parts.geturl(), data=body, headers=headers, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise StowFailed(f"STOW-RS to {url} failed: {exc}") from exc
    if response.status_code not in (200, 202):
        text = response.content[:4096].decode("utf-8", "replace")[:300]
        raise StowFailed(f"STOW-RS to {url} answered {response.status_code}: {text}")
    return response.status_code
