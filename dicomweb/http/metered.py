"""The HTTP metrics of every request: its duration until the body was sent and the bytes sent,
by route template (never the URL: no UIDs in labels), method and status class."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, cast

from flask import Flask, Response, g, request

from storage import metrics

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
UNMATCHED = "unmatched"  # a path no route serves (its 404 is counted without its path)
_STARTED = "metered_started"


class _Counted:
    """A streamed body that counts the bytes it yields; its close closes the body."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


def install(app: Flask, named: frozenset[str] = frozenset()) -> None:
    """Measure every request of *app*; the paths in *named* (served by no route, such as the
    probes) are their own label. Install first, so that it measures what the others did."""
    children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    @app.before_request
    def _started() -> None:
        g.setdefault(_STARTED, time.perf_counter())

    @app.after_request
    def _measured(response: Response) -> Response:
        started = g.get(_STARTED) or time.perf_counter()
        rule = request.url_rule
        path = request.path
        route = rule.rule if rule is not None else (path if path in named else UNMATCHED)
        method = request.method if request.method in METHODS else "other"
        key = (route, method, f"{response.status_code // 100}xx")
        found = children.get(key)
        if found is None:
            found = children[key] = (
                metrics.HTTP_SECONDS.labels(*key),
                metrics.HTTP_BYTES.labels(route, method),
            )
        seconds, sent = found
        if method == "HEAD":
            body: _Counted | None = None
            size = 0
        elif response.is_sequence:
            body = None
            size = sum(len(chunk) for chunk in response.response)
        else:
            body = _Counted(cast(Iterable[bytes], response.response))
            response.response = body
            size = 0

        def _sent() -> None:
            seconds.observe(time.perf_counter() - started)
            sent.inc(body.sent if body is not None else size)

        response.call_on_close(_sent)
        return response
