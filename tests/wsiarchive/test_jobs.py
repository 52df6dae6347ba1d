"""The job logic in process: the records' run tokens, the runner's retry policy, the
in-process queue, the job API's checks (real SQLite index, real converter, Flask's client)."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path

import pytest

from converter import ConversionError, ConversionOptions, SlideInfo
from dicomweb import create_app
from storage.access import Principal, PrincipalKind, Scope
from storage.errors import Forbidden, IndexUnavailable, InvalidRequest, NotFound
from storage.jobs import JobState
from tests.inprocess import TESTER, open_at
from tests.workers import METADATA
from wsiarchive.jobs.common import metadata_json
from wsiarchive.jobs.inprocess import InProcessQueue
from wsiarchive.jobs.runner import Next, Runner, transient

READER = Principal("reader", PrincipalKind.TOKEN, frozenset({Scope.READ}))


@pytest.fixture
def archive(tmp_path: Path):
    opened, _ = open_at(tmp_path / "archive")
    yield opened
    opened.close()


def _runner(archive, retry: float = 0.05) -> Runner:  # noqa: ANN001
    return Runner(archive, ConversionOptions(workers=1), SlideInfo(), "test:1", retry)


def test_a_run_token_guards_the_record(archive) -> None:  # noqa: ANN001
    records = archive.job_records
    job = records.create("/x.svs", "", 3, "tests", False)
    assert job.state is JobState.QUEUED and job.attempts == 0
    first = records.start(job.job_id, "w1", take_over=False)
    assert first is not None and first[0].attempts == 1
    # Without take_over a running job is not taken (two in-process queues racing).
    assert records.start(job.job_id, "w2", take_over=False) is None
    second = records.start(job.job_id, "w2", take_over=True)
    assert second is not None and second[0].attempts == 2
    # The first run lost its token: it can neither finish nor change the job.
    assert not records.owns(job.job_id, first[1])
    assert not records.finish(job.job_id, first[1], "1.2.3", ["1.2.3.4"])
    records.progress(job.job_id, first[1], 5, 10)
    assert records.get(job.job_id).frames_done == 0
    records.progress(job.job_id, second[1], 5, 10)
    assert records.get(job.job_id).percent == 50.0
    # Released by a worker that stops: back in the queue, the attempt not counted.
    records.requeue(job.job_id, second[1], "", attempt_counts=False)
    released = records.get(job.job_id)
    assert released.state is JobState.QUEUED and released.attempts == 1
    third = records.start(job.job_id, "w3", take_over=False)
    assert third is not None
    assert records.finish(job.job_id, third[1], "1.2.3", ["1.2.3.4", "1.2.3.5"])
    done = records.get(job.job_id)
    assert done.state is JobState.DONE and done.instance_uids == ("1.2.3.4", "1.2.3.5")
    assert records.start(job.job_id, "w4", take_over=True) is None  # final
    assert records.depth() == {s: int(s is JobState.DONE) for s in JobState}


def test_failures_of_the_machine_are_transient_those_of_the_slide_not() -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    wrapped = ConversionError("x.svs: conversion failed while writing")
    wrapped.__cause__ = full
    assert transient(full) and transient(wrapped) and transient(IndexUnavailable("down"))
    assert not transient(ConversionError("x.svs: cannot be read"))
    assert not transient(FileNotFoundError(errno.ENOENT, "gone"))
    assert not transient(InvalidRequest("bad"))
    assert transient(RuntimeError("unexpected"))  # tried again, up to max attempts


def test_a_slide_that_cannot_be_read_fails_at_once(archive, testdata: Path) -> None:  # noqa: ANN001
    records = archive.job_records
    job = records.create(str(testdata / "svs" / "histolab_broken.svs"), "", 3, "t", False)
    assert _runner(archive).run(job.job_id).next is Next.FAILED
    failed = records.get(job.job_id)
    assert failed.attempts == 1 and "not a slide format" in failed.reason


def test_a_missing_source_and_bad_metadata_fail_at_once(archive, tmp_path: Path) -> None:  # noqa: ANN001
    records = archive.job_records
    job = records.create(str(tmp_path / "absent.svs"), "", 3, "t", False)
    assert _runner(archive).run(job.job_id).next is Next.FAILED
    assert "no such file" in records.get(job.job_id).reason
    bad = records.create("/x.svs", json.dumps({"stains": 5}), 3, "t", False)
    assert _runner(archive).run(bad.job_id).next is Next.FAILED
    assert "stains must be a list" in records.get(bad.job_id).reason


def test_retry_delay_doubles_and_the_last_attempt_fails(archive, monkeypatch) -> None:  # noqa: ANN001
    import wsiarchive.jobs.runner as runner_module

    def disk_full(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise ConversionError("x: conversion failed while writing") from OSError(
            errno.ENOSPC, "No space left on device"
        )

    monkeypatch.setattr(runner_module, "convert", disk_full)
    records = archive.job_records
    job = records.create("/x.svs", "", 3, "t", False)
    runner = _runner(archive, retry=2.0)
    assert runner.run(job.job_id) == runner_module.Ran(Next.RETRY, 2.0)
    assert records.get(job.job_id).state is JobState.QUEUED
    assert runner.run(job.job_id) == runner_module.Ran(Next.RETRY, 4.0)
    assert runner.run(job.job_id).next is Next.FAILED
    failed = records.get(job.job_id)
    assert failed.state is JobState.FAILED and failed.attempts == 3
    assert "attempt 3 of 3" in failed.reason and "conversion failed" in failed.reason


def test_inprocess_queue_converts_and_checks_who_submits(archive, testdata: Path) -> None:  # noqa: ANN001
    queue = InProcessQueue(_runner(archive), max_attempts=2)
    try:
        with pytest.raises(Forbidden):
            queue.submit("/x.svs", "", who=READER)
        with pytest.raises(InvalidRequest, match="unknown metadata keys"):
            queue.submit("/x.svs", json.dumps({"colour": "red"}), who=TESTER)
        source = testdata / "tiny-synthetic" / "openslide-python" / "small.svs"
        info = SlideInfo.from_mapping(METADATA, "tests")
        job = queue.submit(str(source), metadata_json(info), who=TESTER)
        deadline = time.monotonic() + 120
        while queue.job(job.job_id, who=TESTER).state not in (JobState.DONE, JobState.FAILED):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        done = queue.job(job.job_id, who=TESTER)
        assert done.state is JobState.DONE, done.reason
        stored = archive.records(done.study_uid, who=TESTER)
        assert sorted(r.instance for r in stored) == sorted(done.instance_uids)
        assert [j.job_id for j in queue.jobs(JobState.DONE, who=TESTER)] == [job.job_id]
        with pytest.raises(NotFound):
            queue.job("0" * 32, who=TESTER)
        with pytest.raises(NotFound):
            queue.job("../../etc", who=TESTER)
    finally:
        queue.close()


def test_job_api_checks(archive, tmp_path: Path) -> None:  # noqa: ANN001
    _, settings = open_at(tmp_path / "archive", job_upload_dir=str(tmp_path / "up"))
    queue = InProcessQueue(_runner(archive), max_attempts=1)
    try:
        web = create_app(archive, settings, queue).test_client()
        assert web.post("/api/jobs", data=b"x", content_type="text/plain").status_code == 415
        assert web.post("/api/jobs", json={"nopath": 1}).status_code == 400
        upload = "application/octet-stream"
        for name in ("../x.svs", "", "a/b.svs"):
            response = web.post(f"/api/jobs?filename={name}", data=b"x", content_type=upload)
            assert response.status_code == 400, name
        mrxs = web.post("/api/jobs?filename=s.mrxs", data=b"x", content_type=upload)
        assert mrxs.status_code == 400 and "by its path" in mrxs.get_json()["error"]
        assert web.get("/api/jobs/" + "f" * 32).status_code == 404
        assert web.get("/api/jobs?state=lost").status_code == 400
        listed = web.get("/api/jobs").get_json()
        assert listed["jobs"] == [] and listed["depth"]["queued"] == 0
        # A refused upload leaves nothing in the upload folder.
        assert not [p for p in (tmp_path / "up").rglob("*") if p.is_file()]
        empty = web.post("/api/jobs?filename=e.svs", data=b"", content_type=upload)
        assert empty.status_code == 400
        assert not [p for p in (tmp_path / "up").rglob("*") if p.is_file()]
    finally:
        queue.close()


def test_job_api_needs_the_write_scope(archive, tmp_path: Path) -> None:  # noqa: ANN001
    _, settings = open_at(tmp_path / "archive", anonymous_scopes="read")
    queue = InProcessQueue(_runner(archive), max_attempts=1)
    try:
        web = create_app(archive, settings, queue).test_client()
        assert web.get("/api/jobs").status_code == 403
        assert web.post("/api/jobs", json={"path": "/x.svs"}).status_code == 403
        assert archive.job_records.depth()[JobState.QUEUED] == 0
    finally:
        queue.close()
