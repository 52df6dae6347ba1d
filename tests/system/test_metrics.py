"""The probes and metrics of a real server with several workers and its DICOM listener: the
counts of /metrics are the requests made, summed over every process; readiness follows the
PostgreSQL index going away and coming back while liveness stays; SIGTERM drains."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.inprocess import multiframe, part10
from tests.servers import ArchiveServer, PostgresCluster

FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
FRAME_ROUTE = "/dicomweb/studies/<study>/series/<series>/instances/<instance>/frames/<frames>"
STOW_ROUTE = "/dicomweb/studies"


def origin(server: ArchiveServer) -> str:
    return server.url[: -len("/dicomweb")]


def scrape(server: ArchiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by name and labels, parsed by prometheus-client's parser."""
    response = requests.get(origin(server) + "/metrics", timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def worker_files(server: ArchiveServer) -> set[str]:
    """The metrics files of the serve's processes (one per process that counted)."""
    assert server.process is not None
    # The serve process set the variable for its children; the DICOM listener, started by
    # exec (spawn), shows it in its /proc environ.
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"PPid:\t{server.process.pid}\n" not in status.read_text():
                continue
            environ = (status.parent / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        found = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
        if "PROMETHEUS_MULTIPROC_DIR" in found:
            return {path.name for path in Path(found["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db")}
    raise AssertionError("no process of the server names its metrics directory")


def test_counts_are_summed_across_workers_and_the_listener(fresh_server, testdata: Path) -> None:
    server = fresh_server(
        workers="3",
        dimse_peers=json.dumps(
            [{"ae_title": title, "host": "127.0.0.1"} for title in ("ECHOSCU", "STORESCU")]
        ),
    )
    stows, frames_asked = 5, 60
    instances = [multiframe(4, seed=seed) for seed in range(stows)]
    for dataset in instances:
        server.store([part10(dataset)])

    def frame(number: int) -> int:
        dataset = instances[number % stows]
        url = (
            f"{server.url}/studies/{dataset.StudyInstanceUID}/series/"
            f"{dataset.SeriesInstanceUID}/instances/{dataset.SOPInstanceUID}/frames/"
            f"{random.randint(1, 4)}"
        )
        # A connection of its own each time: the workers take turns accepting them.
        response = requests.get(url, headers={"Accept": FRAMES, "Connection": "close"}, timeout=30)
        assert response.status_code == 200
        return len(response.content)

    with ThreadPoolExecutor(8) as pool:
        body_bytes = sum(pool.map(frame, range(frames_asked)))
    missing = f"{server.url}/studies/1.2.3/series/4.5.6/instances/7.8.9/frames/1"
    assert requests.get(missing, headers={"Accept": FRAMES}, timeout=30).status_code == 404

    server.wait_dimse()
    sent = testdata / "dicom" / "wsi2dcm_jpeg.dcm"
    for command in (["echoscu"], ["storescu", "-aet", "STORESCU", "-R", "-xy"]):
        result = subprocess.run(
            [*command, "-aec", "WSIARCHIVE", "127.0.0.1", str(server.dimse_port)]
            + ([str(sent)] if command[0] == "storescu" else []),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    unknown = [
        "echoscu",
        "-aet",
        "NOBODY",
        "-aec",
        "WSIARCHIVE",
        "127.0.0.1",
        str(server.dimse_port),
    ]
    assert subprocess.run(unknown, capture_output=True, timeout=60).returncode != 0

    samples = scrape(server)
    count = "wsiarchive_http_request_duration_seconds_count"
    assert value(samples, count, route=FRAME_ROUTE, method="GET", status="2xx") == frames_asked
    assert value(samples, count, route=FRAME_ROUTE, method="GET", status="4xx") == 1
    assert value(samples, count, route=STOW_ROUTE, method="POST", status="2xx") == stows
    assert (
        value(samples, "wsiarchive_http_response_bytes_total", route=FRAME_ROUTE, method="GET")
        >= body_bytes
    )
    assert value(samples, "wsiarchive_ingest_instances_total", door="stow") == stows
    stored = sum(len(part10(dataset)) for dataset in instances)
    assert value(samples, "wsiarchive_ingest_bytes_total", door="stow") >= stored
    # The listener's own process counted into the same run.
    assert value(samples, "wsiarchive_ingest_instances_total", door="c-store") == 1
    # The listener writes the data set it received after its own File Meta Information.
    assert (
        value(samples, "wsiarchive_ingest_bytes_total", door="c-store") > 0.9 * sent.stat().st_size
    )
    operations = "wsiarchive_dimse_operations_total"
    assert value(samples, operations, operation="C_ECHO", status="success") == 1
    assert value(samples, operations, operation="C_STORE", status="success") == 1
    associations = "wsiarchive_dimse_associations_total"
    assert value(samples, associations, event="accepted") == 2
    assert value(samples, associations, event="released") == 2
    assert value(samples, associations, event="rejected") == 1
    assert value(samples, "wsiarchive_cache_lookups_total", cache="records", result="hit") > 0
    # No UID (nor any other part of a URL) in any label.
    uids = {str(d.SOPInstanceUID) for d in instances} | {"1.2.3", "7.8.9"}
    labels = {v for (_, pairs) in samples for _, v in pairs}
    assert not any(uid in label for uid in uids for label in labels)
    # More than one web worker served (each observes into a histogram file named by its pid):
    # the sums above are over processes.
    served = {name for name in worker_files(server) if name.startswith("histogram_")}
    assert len(served) >= 2, served


def test_probes_answer_without_a_token_and_metrics_only_to_loopback(fresh_server) -> None:
    server = fresh_server(anonymous_access="off", workers="1")
    assert requests.get(server.url + "/studies", timeout=30).status_code == 401
    live = requests.get(origin(server) + "/healthz", timeout=30)
    assert live.status_code == 200 and live.json() == {"status": "alive"}
    ready = requests.get(origin(server) + "/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    assert [c["name"] for c in ready.json()["checks"]] == ["index", "blobs", "draining"]
    assert all(c["ok"] for c in ready.json()["checks"])
    assert (
        "wsiarchive_http_request_duration_seconds"
        in requests.get(origin(server) + "/metrics", timeout=30).text
    )
    # Neither written to the access log nor audited: the log stays quiet at warning level
    # anyway, so the audit trail is what is checked (a refused login was recorded above).
    log = server.log_path.read_text() if server.log_path else ""
    assert "/healthz" not in log and "/readyz" not in log


def test_readiness_follows_the_postgresql_index(fresh_server) -> None:
    """The index's server stopped: /readyz says 503 with the index check failed (within a
    few seconds), /healthz stays 200; the index back: /readyz 200 again by itself."""
    directory = Path(tempfile.mkdtemp(prefix="wsiarchive-pg-"))
    cluster = PostgresCluster(directory).start()
    try:
        server = fresh_server(database_url=cluster.url, workers="2")
        base = origin(server)
        assert requests.get(base + "/readyz", timeout=30).status_code == 200
        cluster.stop()
        for _ in range(4):  # each worker asked (connections go to either)
            started = time.monotonic()
            response = requests.get(base + "/readyz", headers={"Connection": "close"}, timeout=30)
            assert response.status_code == 503, response.text
            assert time.monotonic() - started < 10
            checks = {c["name"]: c for c in response.json()["checks"]}
            assert not checks["index"]["ok"] and checks["blobs"]["ok"]
            assert checks["index"]["reason"] == "the index cannot be reached"
            assert "127.0.0.1" not in response.text  # no host named to anyone asking
            assert requests.get(base + "/healthz", timeout=30).status_code == 200
        samples = scrape(server)
        assert value(samples, "wsiarchive_index_unavailable_total") >= 1
        cluster.resume()
        deadline = time.monotonic() + 30
        while requests.get(base + "/readyz", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "readiness did not return"
            time.sleep(0.5)
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_sigterm_drains_before_stopping(fresh_server) -> None:
    """With drain_seconds, a SIGTERM to the main process turns readiness 503 at once while
    everything else is still served, and the server stops when the drain is over."""
    server = fresh_server(drain_seconds="3", workers="2")
    base = origin(server)
    dataset = multiframe(2)
    server.store([part10(dataset)])
    assert requests.get(base + "/readyz", timeout=30).status_code == 200
    assert server.process is not None
    signalled = time.monotonic()
    os.kill(server.process.pid, signal.SIGTERM)
    time.sleep(0.3)
    for _ in range(3):
        response = requests.get(base + "/readyz", headers={"Connection": "close"}, timeout=30)
        assert response.status_code == 503, response.text
        checks = {c["name"]: c for c in response.json()["checks"]}
        assert not checks["draining"]["ok"] and checks["index"]["ok"]
        assert requests.get(base + "/healthz", timeout=30).status_code == 200
        found = requests.get(f"{server.url}/studies/{dataset.StudyInstanceUID}/series", timeout=30)
        assert found.status_code == 200
    server.process.wait(timeout=30)
    assert time.monotonic() - signalled >= 3
    server.process = None


def test_metrics_off_counts_nothing_and_serves_no_metrics(fresh_server) -> None:
    server = fresh_server(metrics="false", workers="1")
    server.store([part10(multiframe(1))])
    assert requests.get(origin(server) + "/metrics", timeout=30).status_code == 404
    assert requests.get(origin(server) + "/readyz", timeout=30).status_code == 200
