"""Conversion at scale: real `wsiarchive worker` processes on one PostgreSQL index and blob
directory take jobs submitted through the drop folder and the job API, each done once, the
stored slides read back over DICOMweb and compared with the source's tiles (opentile); a
slide that cannot be read fails at once, a full disk fails after its retries, a worker
stopped by SIGTERM releases its job and one killed by SIGKILL loses it to another; and the
in-process queue of an archive on SQLite."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from dicomweb_client import DICOMwebClient

from tests.workers import (
    METADATA,
    SLIDE_FLAGS,
    WorkerProcess,
    api_jobs,
    new_database,
    queue_env,
    wait_for,
)

SMALL = "svs/CMU-1-Small-Region.svs"
TINY = "tiny-synthetic/openslide-python/small.svs"
LARGER = "svs/tcga-cr-7395-01a-01-ts1.svs"
NDPI = "ndpi/test3-DAPI-2-(387).ndpi"
UNREADABLE = "tiny-synthetic/openslide-python/unreadable.svs"
FINAL = ("done", "failed")


def _api(server) -> str:  # noqa: ANN001
    return server.url.removesuffix("/dicomweb") + "/api/jobs"


def _submit_path(server, path: Path) -> dict:  # noqa: ANN001
    response = requests.post(_api(server), json={"path": str(path), "metadata": METADATA})
    assert response.status_code == 202, response.text
    assert response.headers["Location"].endswith(response.json()["id"])
    return response.json()


def _upload(server, path: Path) -> dict:  # noqa: ANN001
    with open(path, "rb") as fp:
        response = requests.post(
            _api(server),
            params={"filename": path.name, "metadata": json.dumps(METADATA)},
            data=fp,
            headers={"Content-Type": "application/octet-stream"},
        )
    assert response.status_code == 202, response.text
    return response.json()


def _job(server, job_id: str) -> dict:  # noqa: ANN001
    response = requests.get(f"{_api(server)}/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _ended(server, job_id: str, timeout: float = 180) -> dict:  # noqa: ANN001
    return wait_for(
        lambda: (job := _job(server, job_id))["state"] in FINAL and job,
        timeout,
        0.2,
        f"job {job_id}",
    )


def _opentile_tiles(path: Path) -> list[bytes]:
    from opentile import OpenTile

    with OpenTile.open(path) as tiler:
        level = tiler.get_level(0)
        width, height = level.tiled_size.width, level.tiled_size.height
        return [level.get_tile((x, y)) for y in range(height) for x in range(width)]


def _same(frame: bytes, tile: bytes) -> bool:
    return frame == tile or (len(tile) % 2 == 1 and frame == tile + b"\x00")


def _check_base_level(reader, job: dict, source: Path) -> None:  # noqa: ANN001
    """The stored base level's frames, read over WADO-RS, are the source's tiles."""
    client = DICOMwebClient(reader.url)
    study = job["study_instance_uid"]
    found = client.search_for_instances(study, fields=["00080008", "00280008"])
    assert {item["00080018"]["Value"][0] for item in found} == set(job["sop_instance_uids"])
    volumes = [item for item in found if "VOLUME" in item["00080008"]["Value"]]
    base = max(volumes, key=lambda item: int(item["00280008"]["Value"][0]))
    count = int(base["00280008"]["Value"][0])
    tiles = _opentile_tiles(source)
    assert count == len(tiles)
    series, instance = base["0020000E"]["Value"][0], base["00080018"]["Value"][0]
    numbers = sorted({1, count // 2 + 1, count})
    got = client.retrieve_instance_frames(study, series, instance, numbers)
    assert all(_same(bytes(g), tiles[n - 1]) for g, n in zip(got, numbers, strict=True))


def _instances_stored(reader) -> int:  # noqa: ANN001
    response = requests.get(reader.url + "/instances", params={"limit": "1000"})
    assert response.status_code in (200, 204), response.text
    return len(response.json()) if response.status_code == 200 else 0


@pytest.fixture
def shared(postgres, tmp_path: Path):  # noqa: ANN001, ANN201
    """A PostgreSQL index of its own and one blob directory for every process of a test."""
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    return new_database(postgres), blobs


def _workers(tmp_path: Path, env: dict[str, str], count: int) -> list[WorkerProcess]:
    return [WorkerProcess(tmp_path / f"worker{i}", env).start() for i in range(count)]


def test_two_workers_take_jobs_from_the_drop_folder_and_the_api(
    fresh_server, shared, testdata: Path, tmp_path: Path
) -> None:
    database, blobs = shared
    env = queue_env(database, blobs)
    server = fresh_server(database_url=database, blob_dir=str(blobs), job_queue="postgresql")
    workers = _workers(tmp_path, env, 2)
    try:
        drop = tmp_path / "drop"
        drop.mkdir()
        for name in (SMALL, TINY, LARGER, UNREADABLE):
            shutil.copy(testdata / name, drop / Path(name).name)
        watch = subprocess.run(
            [sys.executable, "-m", "wsiarchive", "watch", str(drop), "--once"]
            + ["--interval", "0.3", "--data-dir", str(tmp_path / "watch"), *SLIDE_FLAGS],
            env={**env, "WSIARCHIVE_WATCH_SETTLE_SECONDS": "0.5"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert watch.returncode == 0, watch.stderr[-3000:]
        by_path = _submit_path(server, testdata / SMALL)
        uploaded = _upload(server, testdata / TINY)
        for job in (by_path, uploaded):
            assert _ended(server, job["id"])["state"] == "done"

        jobs = api_jobs(server.url)
        assert len(jobs) == 6
        done = [job for job in jobs if job["state"] == "done"]
        failed = [job for job in jobs if job["state"] == "failed"]
        # Each job done exactly once: one attempt, its own instances, none stored twice.
        assert len(done) == 5 and all(job["attempts"] == 1 for job in done)
        uids = [uid for job in done for uid in job["sop_instance_uids"]]
        assert len(uids) == len(set(uids)) == _instances_stored(server)
        assert all(
            job["progress"]["percent"] == 100.0 for job in done if job["progress"]["frames_total"]
        )
        # Both workers took jobs (5 slides of seconds each, one at a time per worker).
        assert {job["worker"].rsplit(":", 1)[1] for job in done} == {
            w.name_suffix[1:] for w in workers
        }
        # The slide that cannot be read failed at once, with the converter's reason.
        assert len(failed) == 1 and failed[0]["attempts"] == 1
        assert "cannot be read" in failed[0]["reason"]
        # The drop folder moved each slide on when its job ended.
        assert sorted(p.name for p in (drop / "done").iterdir()) == sorted(
            Path(n).name for n in (SMALL, TINY, LARGER)
        )
        reason = (drop / "failed" / "unreadable.svs.reason.txt").read_text()
        assert "cannot be read" in reason
        assert not list((drop / "queued").rglob("*.job"))
        # An upload is removed once its job is done.
        assert not Path(uploaded["source"]).exists()
        # The slides read back from a server of their own, frames against the source tiles.
        reader = fresh_server(database_url=database, blob_dir=str(blobs))
        for job in done:
            if Path(job["source"]).name == Path(SMALL).name:
                _check_base_level(reader, job, testdata / SMALL)
        depth = requests.get(_api(server)).json()["depth"]
        assert depth == {"queued": 0, "running": 0, "done": 5, "failed": 1}
    finally:
        for worker in workers:
            assert worker.stop() == 0, worker.log()


def test_full_disk_is_retried_then_failed_with_the_reason(
    fresh_server, shared, testdata: Path, tmp_path: Path
) -> None:
    database, blobs = shared
    env = queue_env(database, blobs)
    # The submitter sets a job's attempts.
    server = fresh_server(
        database_url=database, blob_dir=str(blobs), job_queue="postgresql", job_max_attempts="2"
    )
    # Files past 64 KiB fail with EFBIG, as on a full disk: transient, so retried.
    worker = WorkerProcess(tmp_path / "worker", env, file_size_limit=64 << 10).start()
    try:
        job = _ended(server, _submit_path(server, testdata / SMALL)["id"])
        assert job["state"] == "failed", job
        assert job["attempts"] == 2 and job["max_attempts"] == 2
        assert "File too large" in job["reason"] and "attempt 2 of 2" in job["reason"]
        assert _instances_stored(server) == 0
    finally:
        assert worker.stop() == 0, worker.log()


def test_sigterm_releases_the_job_and_sigkill_loses_it_to_another_worker(
    fresh_server, shared, testdata: Path, tmp_path: Path
) -> None:
    database, blobs = shared
    env = queue_env(database, blobs)
    server = fresh_server(database_url=database, blob_dir=str(blobs), job_queue="postgresql")
    # An NDPI: its tiles are copied on the fast path, which reports progress (and so sees a
    # request to stop between tiles). Each worker is frozen (SIGSTOP) as soon as it has
    # started the job, so that the signal reaches it mid-job however fast the machine.
    first = WorkerProcess(tmp_path / "first", env).start()
    workers = [first]
    job_id = _submit_path(server, testdata / NDPI)["id"]

    def freeze_when_running(worker: WorkerProcess) -> None:
        def started() -> bool:
            job = _job(server, job_id)
            return job["state"] == "running" and job["worker"].endswith(worker.name_suffix)

        wait_for(started, 120, 0.01, "the worker to start the job")
        assert worker.process is not None
        worker.process.send_signal(signal.SIGSTOP)
        assert _job(server, job_id)["state"] == "running"

    try:
        freeze_when_running(first)
        assert first.process is not None
        first.process.send_signal(signal.SIGTERM)
        first.process.send_signal(signal.SIGCONT)
        assert first.stop(signal.SIGTERM, timeout=30) == 0, first.log()
        released = _job(server, job_id)
        assert released["state"] == "queued" and released["attempts"] == 0, released
        second = WorkerProcess(tmp_path / "second", env).start()
        workers.append(second)
        freeze_when_running(second)
        second.stop(signal.SIGKILL)
        third = WorkerProcess(tmp_path / "third", env).start()
        workers.append(third)
        job = _ended(server, job_id)
        assert job["state"] == "done", job
        assert job["worker"].endswith(third.name_suffix)
        # The released run did not count; the killed one did.
        assert job["attempts"] == 2
        assert job["progress"]["frames_done"] == job["progress"]["frames_total"] > 0
        # The killed run stored nothing: only the third run's instances are listed.
        assert _instances_stored(server) == len(job["sop_instance_uids"])
        _check_base_level(server, job, testdata / NDPI)
    finally:
        for worker in workers:
            if worker.process is not None:
                worker.process.send_signal(signal.SIGCONT)
                worker.stop()


def test_inprocess_queue_on_sqlite(fresh_server, testdata: Path, tmp_path: Path) -> None:
    server = fresh_server(job_queue="inprocess", job_retry_seconds="0.2")
    uploaded = _upload(server, testdata / SMALL)
    failing = _submit_path(server, testdata / UNREADABLE)
    missing = _submit_path(server, tmp_path / "nowhere.svs")
    job = _ended(server, uploaded["id"])
    assert job["state"] == "done" and job["attempts"] == 1
    _check_base_level(server, job, testdata / SMALL)
    for other, reason in ((failing, "cannot be read"), (missing, "no such file")):
        ended = _ended(server, other["id"])
        assert ended["state"] == "failed" and reason in ended["reason"], ended
    # `submit` on SQLite converts in its own process and waits.
    data = tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, "-m", "wsiarchive", "submit", "--data-dir", str(data), *SLIDE_FLAGS]
        + ["--job-queue", "inprocess", str(testdata / TINY)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert " done " in result.stdout
    listing = subprocess.run(
        [sys.executable, "-m", "wsiarchive", "jobs", "--json", "--data-dir", str(data)]
        + ["--job-queue", "inprocess"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert [job["state"] for job in json.loads(listing.stdout)] == ["done"]
