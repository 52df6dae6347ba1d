"""Limits per client: a request rate (token bucket), requests in progress, and the uploads a
worker process receives at once. State is per process: each worker counts its own."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from flask import Flask, Response, g, request

from dicomweb.http.errors import HTTPError
from storage.access import PrincipalKind

MAX_CLIENTS = 10_000  # rate buckets kept; full ones are dropped first beyond this
BUSY_RETRY_SECONDS = 1  # Retry-After of a client over its in-flight limit
OVERLOAD_RETRY_SECONDS = 5  # Retry-After when every upload slot of the process is taken
_RELEASES = "wsiarchive_limit_releases"


class LimitConfig(Protocol):
    """The settings of the limits (declared in wsiarchive's settings)."""

    @property
    def max_uploads(self) -> int: ...

    @property
    def threads(self) -> int: ...

    @property
    def max_in_flight(self) -> int: ...

    @property
    def rate_limit(self) -> float: ...

    @property
    def rate_burst(self) -> int: ...


def client_key() -> str:
    """Whom a request counts against: the authenticated subject (``g.principal``, set by
    authentication before this runs), else (anonymous, or no principal) the remote address."""
    principal = g.get("principal")
    if principal is not None and principal.kind != PrincipalKind.ANONYMOUS:
        return f"subject:{principal.subject}"
    return f"address:{request.remote_addr}"


@dataclass
class RateLimiter:
    """A token bucket per client: *rate* tokens a second, at most *burst* saved up."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # tokens, when
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str) -> float:
        """Take one token for *key*: 0 when there was one, else the seconds until there is."""
        now = self.clock()
        with self._lock:
            tokens, when = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - when) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                if len(self._buckets) > MAX_CLIENTS:
                    self._forget_full(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled: they are as a new client's would be."""
        for key, (tokens, when) in list(self._buckets.items()):
            if tokens + (now - when) * self.rate >= self.burst:
                del self._buckets[key]


@dataclass
class Counter:
    """Requests in progress, per key, each up to *limit*."""

    limit: int
    _counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, key: str) -> bool:
        with self._lock:
            count = self._counts.get(key, 0)
            if count >= self.limit:
                return False
            self._counts[key] = count + 1
            return True

    def release(self, key: str) -> None:
        with self._lock:
            count = self._counts.get(key, 0) - 1
            if count > 0:
                self._counts[key] = count
            else:
                self._counts.pop(key, None)

    def count(self, key: str) -> int:
        with self._lock:
            return self._counts.get(key, 0)


def upload_slots(config: LimitConfig) -> int | None:
    """Uploads one process receives at once (None: no limit). Fewer than the threads, a
    slow or stalled upload never takes the threads readers need: by default one thread
    fewer than the process has (at least one); a negative setting lifts the limit."""
    if config.max_uploads < 0:
        return None
    return config.max_uploads or max(config.threads - 1, 1)


@dataclass
class Limits:
    """The limits of one process, applied before each request and released after it."""

    rate: RateLimiter | None
    in_flight: Counter | None
    uploads: Counter | None

    @classmethod
    def of(cls, config: LimitConfig) -> Limits:
        rate = None
        if config.rate_limit > 0:
            burst = config.rate_burst or max(1, math.ceil(config.rate_limit))
            rate = RateLimiter(config.rate_limit, float(burst))
        in_flight = Counter(config.max_in_flight) if config.max_in_flight > 0 else None
        slots = upload_slots(config)
        return cls(rate, in_flight, Counter(slots) if slots is not None else None)

    def admit(self) -> None:
        """Count the request against its client, or refuse it: 429 Too Many Requests with
        Retry-After for a client over its limits (RFC 6585 §4), 503 with Retry-After when
        the process has no upload slot left (RFC 9110 §15.6.4)."""
        releases: list[Callable[[], None]] = []
        g.setdefault(_RELEASES, releases)
        uploads = self.uploads if request.method == "POST" else None
        if self.rate is None and self.in_flight is None and uploads is None:
            return
        key = client_key()
        if self.rate is not None:
            wait = self.rate.take(key)
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                raise HTTPError(
                    429,
                    f"too many requests: at most {self.rate.rate:g} a second "
                    f"(bursts of {self.rate.burst:g}); retry in {seconds} s",
                    {"Retry-After": str(seconds)},
                )
        counter = self.in_flight
        if counter is not None:
            if not counter.acquire(key):
                raise HTTPError(
                    429,
                    f"too many requests in progress: at most {counter.limit} at once",
                    {"Retry-After": str(BUSY_RETRY_SECONDS)},
                )
            releases.append(lambda: counter.release(key))
        if uploads is not None:
            if not uploads.acquire(""):
                raise HTTPError(
                    503,
                    f"the server is receiving {uploads.limit} uploads already; retry "
                    f"in {OVERLOAD_RETRY_SECONDS} s",
                    {"Retry-After": str(OVERLOAD_RETRY_SECONDS)},
                )
            releases.append(lambda: uploads.release(""))


def _release_all() -> Callable[[], None]:
    releases: list[Callable[[], None]] = g.pop(_RELEASES, [])

    def release() -> None:
        while releases:
            releases.pop()()

    return release


def install(app: Flask, config: LimitConfig) -> Limits:
    """Apply the limits to every request of *app*. Install after authentication, so that
    ``g.principal`` is known. A slot is held until the response body is sent (its close)."""
    limits = Limits.of(config)

    @app.before_request
    def _admit() -> None:
        limits.admit()

    @app.after_request
    def _hold_until_sent(response: Response) -> Response:
        if g.get(_RELEASES):
            response.call_on_close(_release_all())
        return response

    @app.teardown_request
    def _release(_error: BaseException | None) -> None:
        # A request that never got to after_request (it normally does, errors included).
        _release_all()()

    return limits
