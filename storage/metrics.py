"""The archive's Prometheus metrics, each declared here once; counted where the work happens
and exposed, summed across a server's processes, by ``exposition`` (docs/operations.md)."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable: one dir per serve
CONTENT_TYPE = CONTENT_TYPE_LATEST
NAMESPACE = "wsiarchive"


class Door(StrEnum):
    """The front door an instance came in by."""

    STOW = "stow"  # STOW-RS
    C_STORE = "c-store"  # DIMSE C-STORE
    IMPORT = "import"  # the import and watch commands (an administrator on the machine)


# -- the metrics ----------------------------------------------------------------------------------
HTTP_SECONDS = Histogram(
    "http_request_duration_seconds",
    "HTTP requests by route template, method and status class: the time until the body was "
    "sent (its _count is the number of requests).",
    ["route", "method", "status"],
    namespace=NAMESPACE,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HTTP_BYTES = Counter(
    "http_response_bytes",
    "Bytes of HTTP response bodies sent, by route template and method.",
    ["route", "method"],
    namespace=NAMESPACE,
)
INGESTED = Counter(
    "ingest_instances", "Instances stored, by front door.", ["door"], namespace=NAMESPACE
)
INGESTED_BYTES = Counter(
    "ingest_bytes", "Bytes of the instances stored, by front door.", ["door"], namespace=NAMESPACE
)
INGEST_FAILURES = Counter(
    "ingest_failures",
    "Ingests refused or failed, by front door and reason (the archive error's class).",
    ["door", "reason"],
    namespace=NAMESPACE,
)
CACHE_LOOKUPS = Counter(
    "cache_lookups",
    "Lookups of the core's caches, by cache and result (hit or miss).",
    ["cache", "result"],
    namespace=NAMESPACE,
)
INDEX_UNAVAILABLE = Counter(
    "index_unavailable",
    "Index operations that failed because the index could not be reached (IndexUnavailable).",
    namespace=NAMESPACE,
)
DIMSE_ASSOCIATIONS = Counter(
    "dimse_associations",
    "Association events of the DICOM listener: accepted, rejected, released, aborted.",
    ["event"],
    namespace=NAMESPACE,
)
DIMSE_OPERATIONS = Counter(
    "dimse_operations",
    "DIMSE operations the DICOM listener answered, by service (C_STORE, C_FIND, ...) and "
    "final status class (success, warning, failure, cancel).",
    ["operation", "status"],
    namespace=NAMESPACE,
)
DECLARED = (
    HTTP_SECONDS,
    HTTP_BYTES,
    INGESTED,
    INGESTED_BYTES,
    INGEST_FAILURES,
    CACHE_LOOKUPS,
    INDEX_UNAVAILABLE,
    DIMSE_ASSOCIATIONS,
    DIMSE_OPERATIONS,
)


class _Off:
    """What a metric is when metrics are off: counting costs a call."""

    def inc(self, amount: float = 1) -> None:
        return None

    def observe(self, amount: float) -> None:
        return None


OFF = _Off()
_enabled = True


def configure(enabled: bool) -> None:
    """Turn counting on or off for this process (the ``metrics`` setting); before the archive
    is opened, since the caches resolve their counters when they are made."""
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


def child(metric: Any, *labels: str) -> Any:
    """The metric's child of *labels*, resolved once by a caller that counts often (or OFF)."""
    return metric.labels(*labels) if _enabled else OFF


class Counted(Protocol):
    """What keeps its own counts of hits and misses (storage.cache.Lru)."""

    hits: int
    misses: int


FLUSH_SECONDS = 1.0  # how late a cache's counts may reach the shared counters


@dataclass
class _Watched:
    name: str
    source: weakref.ref[Counted]
    hits: int = 0
    misses: int = 0


_watched: list[_Watched] = []
_watch_lock = threading.Lock()
_flusher_pid = 0


def watch_cache(name: str, cache: Counted) -> None:
    """Count *cache*'s lookups as wsiarchive_cache_lookups_total{cache=name}. The cache counts
    in its own integers (a lookup costs no more than before); they are added to the shared
    counters every FLUSH_SECONDS by one thread of the process, and at each scrape."""
    global _flusher_pid
    if not _enabled:
        return
    with _watch_lock:
        _watched.append(_Watched(name, weakref.ref(cache)))
        if _flusher_pid != os.getpid():  # none yet in this process (threads do not fork)
            _flusher_pid = os.getpid()
            threading.Thread(target=_flush_every, name="metrics-flush", daemon=True).start()


def _flush_every() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        flush()


def flush() -> None:
    """Add what the watched caches counted since the last flush to the shared counters."""
    with _watch_lock:
        for watched in list(_watched):
            cache = watched.source()
            if cache is None:
                _watched.remove(watched)
                continue
            hits, misses = cache.hits, cache.misses
            if hits > watched.hits:
                CACHE_LOOKUPS.labels(watched.name, "hit").inc(hits - watched.hits)
            if misses > watched.misses:
                CACHE_LOOKUPS.labels(watched.name, "miss").inc(misses - watched.misses)
            watched.hits, watched.misses = hits, misses


def count_ingest(door: Door, instances: int, size: int) -> None:
    if _enabled:
        INGESTED.labels(door.value).inc(instances)
        INGESTED_BYTES.labels(door.value).inc(size)


def count_ingest_failure(door: Door, error: BaseException) -> None:
    if _enabled:
        INGEST_FAILURES.labels(door.value, type(error).__name__).inc()


def count_index_unavailable() -> None:
    if _enabled:
        INDEX_UNAVAILABLE.inc()


# -- gauges computed when scraped -----------------------------------------------------------------
GaugeValue = float | Mapping[tuple[str, ...], float]


@dataclass(frozen=True)
class LiveGauge:
    """A gauge whose value is computed by *callback* in the process that is scraped: a number,
    or a number per tuple of label values (in the order of *labels*)."""

    name: str
    help: str  # noqa: A003
    callback: Callable[[], GaugeValue]
    labels: tuple[str, ...] = ()


_GAUGES: dict[str, LiveGauge] = {}


def register_gauge(
    name: str,
    help: str,  # noqa: A002
    callback: Callable[[], GaugeValue],
    labels: tuple[str, ...] = (),
) -> None:
    """Expose a gauge computed at each scrape (a queue's depth, a tier's bytes): the callback
    runs in the scraped process, so it must read shared state (the index), not this process's
    memory. *name* gets the ``wsiarchive_`` prefix; registering a name again replaces it."""
    full = f"{NAMESPACE}_{name}"
    _GAUGES[full] = LiveGauge(full, help, callback, labels)


class _Live(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        for gauge in list(_GAUGES.values()):
            try:
                value = gauge.callback()
            except Exception:
                log.exception("the gauge %s could not be computed", gauge.name)
                continue
            family = GaugeMetricFamily(gauge.name, gauge.help, labels=gauge.labels)
            if isinstance(value, Mapping):
                for labels, number in value.items():
                    family.add_metric(list(labels), float(number))
            else:
                family.add_metric([], float(value))
            yield family


_LIVE = CollectorRegistry(auto_describe=False)
_LIVE.register(_Live())
_summed: CollectorRegistry | None = None


def exposition() -> bytes:
    """Every metric in the Prometheus text format: in a server (PROMETHEUS_MULTIPROC_DIR set),
    summed over every process that ever ran in it; otherwise this process's own."""
    global _summed
    flush()
    if os.environ.get(MULTIPROCESS):
        if _summed is None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            _summed = registry
        base = _summed
    else:
        base = REGISTRY
    return generate_latest(base) + generate_latest(_LIVE)


def shared() -> bool:
    """True when this process counts into the run's shared files (prometheus-client found
    PROMETHEUS_MULTIPROC_DIR when it was first imported)."""
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))


def process_exited(pid: int) -> None:
    """Forget the live values (multiprocess gauges) of a process that exited; its counters
    stay, as counts that happened."""
    flush()
    if os.environ.get(MULTIPROCESS):
        multiprocess.mark_process_dead(pid)
