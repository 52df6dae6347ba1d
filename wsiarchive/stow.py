"""Exported files sent to another archive by STOW-RS (PS3.18 §10.5): one multipart/related
request per instance, its file streamed from disk in the forwarder's body, with a bearer token
when one is given."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import requests

from wsiarchive.forwarding.stow import TIMEOUT, Body, verdict

CHUNK = 1 << 20  # bytes read from the file at a time


class StowFailed(OSError):
    """The destination refused an instance (or could not be reached)."""


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fp:
        while chunk := fp.read(CHUNK):
            yield chunk


def send(url: str, path: Path, instance: str, token: str | None = None) -> int:
    """POST the Part-10 file *path* (SOP Instance *instance*) to *url*/studies; the HTTP
    status. StowFailed unless the forwarder's verdict is that the instance is stored
    (wsiarchive.forwarding.stow.verdict: a 202 listing it as failed is not, a duplicate is)."""
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
    reason = verdict(response, instance)
    if reason is not None:
        raise StowFailed(f"{url}: {reason}")
    return response.status_code
