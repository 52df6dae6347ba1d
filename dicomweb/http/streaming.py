"""Streamed response bodies: what fails before the first byte reaches the one error handler;
what fails after it is logged and ends the body where a client can tell it is cut short.

A client tells a cut body by its Content-Length (the server closes the connection short of
it: set it whenever the length is known up front), or, without one, by what the body lacks:
a multipart body its close-delimiter, a Part-10 stream its end.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from itertools import chain

from flask import Response

log = logging.getLogger(__name__)


def primed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """*chunks* with the first one produced now, so that an error making it is raised here,
    before the response starts."""
    iterator = iter(chunks)
    try:
        first = next(iterator)
    except StopIteration:
        return iter(())
    return chain([first], iterator)


def guarded(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    """*chunks*, ending without another byte when producing one fails (logged with *what*:
    the response has started, so no status can tell the client any more)."""
    sent = 0
    try:
        for chunk in chunks:
            sent += len(chunk)
            yield chunk
    except Exception:
        log.exception("%s: the response was cut short after %d bytes", what, sent)


def stream(
    chunks: Iterable[bytes],
    what: str,
    length: int | None = None,
    *,
    status: int = 200,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A response streaming *chunks* (primed, then guarded), with Content-Length when the
    *length* is known."""
    all_headers = dict(headers or {})
    if length is not None:
        all_headers["Content-Length"] = str(length)
    return Response(
        guarded(primed(chunks), what),
        status=status,
        content_type=content_type,
        headers=all_headers,
    )
