"""gzip content coding (RFC 9110 §8.4.1.3) for text responses (DICOM JSON and XML metadata,
QIDO results, capabilities) when the client accepts it; streamed, never buffered whole.
Pixel data is left alone: it is compressed already or read by offset."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

from flask import Response, request

COMPRESSIBLE = {
    "application/dicom+json",
    "application/json",
    "application/dicom+xml",
    "application/vnd.sun.wadl+xml",
}
MINIMUM = 1024  # smaller bodies gain less than the gzip framing costs


def accepts_gzip(header: str | None) -> bool:
    """Whether Accept-Encoding allows gzip (named, or through ``*``, with a weight above 0)."""
    weights: dict[str, float] = {}
    for entry in (header or "").split(","):
        coding, _, params = entry.strip().partition(";")
        if not coding:
            continue
        weight = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                weight = 0.0
        weights[coding.strip().lower()] = weight
    if "gzip" in weights:
        return weights["gzip"] > 0
    if "x-gzip" in weights:
        return weights["x-gzip"] > 0
    return weights.get("*", 0.0) > 0


def _compressible(response: Response) -> bool:
    content_type = response.headers.get("Content-Type", "")
    if not ("json" in content_type or "xml" in content_type):
        return False  # the common case (pixel data), decided without parsing the header
    mimetype = response.mimetype or ""
    if mimetype in COMPRESSIBLE:
        return True
    return mimetype == "multipart/related" and response.mimetype_params.get("type") in COMPRESSIBLE


def _gzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: the gzip wrapper
    pending = 0
    for chunk in chunks:
        data = compressor.compress(chunk)
        pending += len(chunk)
        if data:
            yield data
        if pending >= 1 << 20:  # keep a long stream moving
            yield compressor.flush(zlib.Z_SYNC_FLUSH)
            pending = 0
    yield compressor.flush()


def compress(response: Response) -> Response:
    """Apply gzip to *response* when it is text the client accepts compressed."""
    if not _compressible(response) or response.status_code != 200:
        return response
    response.vary.add("Accept-Encoding")
    if request.method == "HEAD" or "Content-Encoding" in response.headers:
        return response
    if not accepts_gzip(request.headers.get("Accept-Encoding")):
        return response
    length: int | None = response.content_length  # None for a streamed body
    if length is not None and length < MINIMUM:
        return response
    response.response = _gzip(response.iter_encoded())
    response.direct_passthrough = False
    response.headers.pop("Content-Length", None)
    response.headers["Content-Encoding"] = "gzip"
    return response
