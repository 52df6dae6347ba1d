"""HTTP Range requests (RFC 9110 §14) on single-part responses of known size: bulk data
values and whole instances, so a client can fetch part of a large value or resume a download."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from flask import Response, request

from dicomweb.http.caching import Representation
from dicomweb.http.errors import HTTPError

Reader = Callable[[int, int], Iterable[bytes]]  # (start, end exclusive) -> chunks


def requested_range(size: int, representation: Representation) -> tuple[int, int] | None:
    """The one byte range asked for as (start, end exclusive), or None to send everything.

    A Range the server cannot use (another unit, several ranges, bad syntax) is ignored, as
    §14.2 allows; If-Range with another validator asks for the whole (§13.1.5); a range that
    starts past the end is 416.
    """
    header = request.headers.get("Range")
    if not header or request.method != "GET":
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != representation.etag:
        return None  # only strong entity tags are compared (a date is not strong enough)
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    match = _BYTE_RANGE.fullmatch(spec.strip())
    if match is None:  # several ranges, another syntax, or not ASCII digits (§14.1.1)
        return None
    first, last = match.groups()
    if (not first and not last) or size == 0:
        return None  # nothing to select from an empty representation: it is sent whole
    if not first:
        suffix = _position(last)
        if suffix <= 0:
            raise _unsatisfiable(size)
        return max(size - suffix, 0), size
    start = _position(first)
    end = _position(last) + 1 if last else max(size, start + 1)
    if end <= start:
        return None  # "9-1": invalid, ignored
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size)


# RFC 9110 §14.1.1: int-range = first-pos "-" [ last-pos ], suffix-range = "-" suffix-length,
# each 1*DIGIT (ASCII: int() would also take '²' or other scripts' digits).
_BYTE_RANGE = re.compile(r"([0-9]*)[ \t]*-[ \t]*([0-9]*)")
_FAR = 1 << 62  # beyond any resource: a position of more digits stands for "past the end"


def _position(digits: str) -> int:
    """A byte position; one too long for int() (or for any resource) is _FAR."""
    return int(digits) if len(digits) <= 18 else _FAR


def _unsatisfiable(size: int) -> HTTPError:
    return HTTPError(
        416,
        f"the range asked for starts beyond the {size} bytes of this resource",
        {"Content-Range": f"bytes */{size}"},
    )


def ranged_response(
    read: Reader,
    size: int,
    content_type: str,
    representation: Representation,
    headers: dict[str, str] | None = None,
) -> Response:
    """200 with the whole body, or 206 with the part the Range header asks for."""
    headers = {**representation.headers(), "Accept-Ranges": "bytes", **(headers or {})}
    wanted = requested_range(size, representation)
    if wanted is None:
        headers["Content-Length"] = str(size)
        return Response(read(0, size), content_type=content_type, headers=headers)
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    return Response(read(start, end), status=206, content_type=content_type, headers=headers)


def slices(data: bytes) -> Reader:
    """A reader over bytes in memory."""
    return lambda start, end: [data[start:end]]


CHUNK = 1 << 20


def blob_reader(
    read_ranges: Callable[[list[tuple[int, int]]], Iterable[bytes]], offset: int = 0
) -> Reader:
    """A reader over a blob region starting at *offset*, in chunks of 1 MiB."""

    def read(start: int, end: int) -> Iterable[bytes]:
        pieces = [
            (offset + position, min(CHUNK, end - position)) for position in range(start, end, CHUNK)
        ]
        return read_ranges(pieces)

    return read
