"""The live gauges of a server, read from the shared index at a scrape: conversion jobs by
state, and stored bytes per storage tier (the latter at most once a minute: it sums a column
over every instance)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from storage import Archive, metrics
from storage.access import Principal, PrincipalKind, Scope

TIER_BYTES_SECONDS = 60.0  # how long one reading of the bytes per tier is shown
# Who reads the tiers' report for the gauge: the server itself, not a user (nothing audited).
SCRAPER = Principal(
    "metrics@server", PrincipalKind.LOCAL, frozenset({Scope.ADMIN}), source="metrics"
)


def _every(
    seconds: float, read: Callable[[], dict[tuple[str, ...], float]]
) -> Callable[[], dict[tuple[str, ...], float]]:
    """*read*, called at most once per *seconds*; its last value in between."""
    lock = threading.Lock()
    last: list[tuple[float, dict[tuple[str, ...], float]]] = []

    def cached() -> dict[tuple[str, ...], float]:
        with lock:
            if not last or time.monotonic() - last[0][0] >= seconds:
                last[:] = [(time.monotonic(), read())]
            return last[0][1]

    return cached


def register(archive: Archive) -> None:
    """Register the gauges of *archive* (docs/operations.md "Metrics")."""
    metrics.register_gauge(
        "conversion_jobs",
        "Conversion jobs by state (queue depth: state=queued).",
        lambda: {(state.value,): count for state, count in archive.job_records.depth().items()},
        labels=("state",),
    )
    metrics.register_gauge(
        "tier_bytes",
        f"Bytes stored per storage tier (read at most every {TIER_BYTES_SECONDS:.0f} s).",
        _every(
            TIER_BYTES_SECONDS,
            lambda: {(name,): size for name, size in archive.tier_bytes(who=SCRAPER).items()},
        ),
        labels=("tier",),
    )
