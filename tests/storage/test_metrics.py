"""The core's metrics: counted where the work happens (ingest by front door and reason, the
named caches), gauges computed at the scrape, and sums across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from storage import metrics
from storage.access import ALL_SCOPES, Principal, PrincipalKind
from storage.cache import Lru
from storage.errors import InvalidInstance
from tests.inprocess import TESTER, multiframe, part10, store

PROJECT = Path(__file__).resolve().parents[2]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_named_cache_counts_its_hits_and_misses() -> None:
    cache: Lru[str, int] = Lru(2, name="test_cache")
    name = "wsiarchive_cache_lookups_total"
    hits, misses = (
        sample(name, cache="test_cache", result="hit"),
        sample(name, cache="test_cache", result="miss"),
    )
    assert cache.get("a") is None
    cache.put("a", 1)
    assert cache.get("a") == 1
    assert cache.get_or_make("a", lambda: 2) == 1
    assert cache.get_or_make("b", lambda: 2) == 2
    metrics.flush()  # the cache counts in its own integers; the flush adds them up (and a scrape)
    assert sample(name, cache="test_cache", result="hit") - hits == 2
    assert sample(name, cache="test_cache", result="miss") - misses == 2
    assert cache.get("a") == 1
    metrics.flush()
    assert sample(name, cache="test_cache", result="hit") - hits == 3
    del cache
    metrics.flush()  # a cache gone is forgotten


def test_ingest_counts_by_front_door_and_failures_by_reason(empty_archive) -> None:
    scanner = Principal("ae:SCANNER", PrincipalKind.AE, ALL_SCOPES)
    before = {door: sample("wsiarchive_ingest_instances_total", door=door) for door in metrics.Door}
    size = len(part10(dataset := multiframe(2)))
    store(empty_archive, dataset)  # as TESTER, an administrator on the machine: import
    staged = empty_archive.stage()
    staged.write(part10(multiframe(1, seed=3)))
    empty_archive.ingest(staged, who=scanner)
    assert sample("wsiarchive_ingest_instances_total", door="import") - before["import"] == 1
    assert sample("wsiarchive_ingest_instances_total", door="c-store") - before["c-store"] == 1
    assert sample("wsiarchive_ingest_bytes_total", door="import") >= size
    failures = sample("wsiarchive_ingest_failures_total", door="import", reason="InvalidInstance")
    bad = empty_archive.stage()
    bad.write(b"not DICOM at all" * 20)
    try:
        empty_archive.ingest(bad, who=TESTER)
    except InvalidInstance:
        pass
    else:
        raise AssertionError("a non-DICOM file was stored")
    assert (
        sample("wsiarchive_ingest_failures_total", door="import", reason="InvalidInstance")
        - failures
        == 1
    )


def test_live_gauges_are_computed_at_each_scrape(monkeypatch) -> None:
    monkeypatch.setattr(metrics, "_GAUGES", {})  # the test's gauges go with it
    depth = {"n": 3}
    metrics.register_gauge(
        "test_queue_depth",
        "Jobs by state.",
        lambda: {("queued",): depth["n"], ("running",): 1},
        ("state",),
    )
    metrics.register_gauge("test_tier_bytes", "Bytes of a tier.", lambda: 1 / 0)  # fails
    metrics.register_gauge("test_single", "A plain number.", lambda: 42)

    def scraped() -> dict[tuple[str, tuple], float]:
        found = {}
        for family in text_string_to_metric_families(metrics.exposition().decode()):
            for s in family.samples:
                found[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return found

    first = scraped()
    assert first[("wsiarchive_test_queue_depth", (("state", "queued"),))] == 3
    assert first[("wsiarchive_test_queue_depth", (("state", "running"),))] == 1
    assert first[("wsiarchive_test_single", ())] == 42
    assert not any(name == "wsiarchive_test_tier_bytes" for name, _ in first)  # left out
    depth["n"] = 5
    assert scraped()[("wsiarchive_test_queue_depth", (("state", "queued"),))] == 5


COUNTER = """
import sys
from storage import metrics
metrics.count_ingest(metrics.Door.STOW, int(sys.argv[1]), 1000)
metrics.HTTP_SECONDS.labels("/r", "GET", "2xx").observe(0.002)
"""


def test_processes_of_one_run_are_summed(tmp_path: Path) -> None:
    """Separate processes count into one directory; a scrape in any of them sums them all
    (prometheus-client's multiprocess mode, as `serve` sets it up)."""
    env = {**os.environ, metrics.MULTIPROCESS: str(tmp_path), "PYTHONPATH": str(PROJECT)}
    for count in (2, 5):
        subprocess.run([sys.executable, "-c", COUNTER, str(count)], env=env, check=True)
    exposed = subprocess.run(
        [sys.executable, "-c", "from storage import metrics; print(metrics.exposition().decode())"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposed)
        for s in family.samples
    }
    assert found[("wsiarchive_ingest_instances_total", (("door", "stow"),))] == 7
    assert found[("wsiarchive_ingest_bytes_total", (("door", "stow"),))] == 2000
    labels = (("method", "GET"), ("route", "/r"), ("status", "2xx"))
    assert found[("wsiarchive_http_request_duration_seconds_count", labels)] == 2
    bucket = (("le", "0.0025"), *labels)
    assert found[("wsiarchive_http_request_duration_seconds_bucket", tuple(sorted(bucket)))] == 2


def test_counting_off_counts_nothing() -> None:
    name = "wsiarchive_ingest_instances_total"
    before = sample(name, door="stow")
    metrics.configure(False)
    try:
        metrics.count_ingest(metrics.Door.STOW, 3, 10)
        assert metrics.child(metrics.HTTP_BYTES, "x", "GET") is metrics.OFF
    finally:
        metrics.configure(True)
    assert sample(name, door="stow") == before
