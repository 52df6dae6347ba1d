"""Conversion jobs: their states, their records, and the queue protocol every backend keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from storage.access import Principal


class JobState(StrEnum):
    """Where a conversion job is; done and failed are final."""

    QUEUED = "queued"  # waiting for a worker (first time, or again after a retryable failure)
    RUNNING = "running"  # a worker converts or stores it
    DONE = "done"  # every instance of the slide stored
    FAILED = "failed"  # given up: a permanent failure, or the last attempt failed


FINAL = frozenset({JobState.DONE, JobState.FAILED})


@dataclass(frozen=True)
class Job:
    """One slide to convert into the archive, as the index records it."""

    job_id: str
    source: str  # a path every worker can read (shared filesystem)
    metadata: str  # JSON object of SlideInfo fields for this slide ("" for none)
    state: JobState
    attempts: int  # runs started so far
    max_attempts: int
    submitted_by: str
    submitted_at: datetime
    updated_at: datetime
    uploaded: bool = False  # the source was uploaded to the shared upload folder
    worker: str = ""  # who runs (or last ran) it
    frames_done: int = 0
    frames_total: int = 0
    study_uid: str = ""
    instance_uids: tuple[str, ...] = field(default_factory=tuple)
    reason: str = ""  # why the last attempt failed (kept while retrying)

    @property
    def percent(self) -> float:
        return 100.0 * self.frames_done / self.frames_total if self.frames_total else 0.0

    def as_json(self) -> dict[str, object]:
        """The job as the API and `wsiarchive jobs --json` show it."""
        shown: dict[str, object] = {
            "id": self.job_id,
            "source": self.source,
            "state": self.state.value,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "submitted_by": self.submitted_by,
            "submitted_at": self.submitted_at.isoformat() + "Z",
            "updated_at": self.updated_at.isoformat() + "Z",
            "worker": self.worker,
            "progress": {
                "frames_done": self.frames_done,
                "frames_total": self.frames_total,
                "percent": round(self.percent, 1),
            },
        }
        if self.state is JobState.DONE:
            shown["study_instance_uid"] = self.study_uid
            shown["sop_instance_uids"] = list(self.instance_uids)
        if self.reason:
            shown["reason"] = self.reason
        return shown


class JobRecords(Protocol):
    """The conversion_job table of the index (storage.index.jobs): a worker's run is named by
    its run token, so a run that lost its job (its lease expired) cannot finish it."""

    def create(
        self, source: str, metadata: str, max_attempts: int, submitted_by: str, uploaded: bool
    ) -> Job: ...

    def get(self, job_id: str) -> Job | None: ...

    def recent(self, state: JobState | None = None, limit: int = 100) -> list[Job]: ...

    def depth(self) -> dict[JobState, int]: ...

    def start(self, job_id: str, worker: str, take_over: bool) -> tuple[Job, str] | None: ...

    def owns(self, job_id: str, run: str) -> bool: ...

    def progress(self, job_id: str, run: str, done: int, total: int) -> None: ...

    def finish(self, job_id: str, run: str, study: str, instances: list[str]) -> bool: ...

    def requeue(self, job_id: str, run: str, reason: str, attempt_counts: bool) -> None: ...

    def fail(self, job_id: str, run: str | None, reason: str) -> None: ...


class JobQueue(Protocol):
    """Where slides are submitted for conversion (wsiarchive.jobs: PostgreSQL or in-process).

    Submitting needs the write scope (the job stores instances as the archive's worker);
    reading jobs needs it too: a job names a file path and the studies it made."""

    def submit(self, source: str, metadata: str, *, who: Principal, uploaded: bool = False) -> Job:
        """Record a job and hand it to the workers."""
        ...

    def job(self, job_id: str, *, who: Principal) -> Job:
        """One job (NotFound when there is none of that id)."""
        ...

    def jobs(self, state: JobState | None = None, limit: int = 100, *, who: Principal) -> list[Job]:
        """The newest jobs first, of one state or all."""
        ...

    def depth(self) -> dict[JobState, int]:
        """How many jobs are in each state (a gauge for /metrics)."""
        ...

    def close(self) -> None:
        """Stop taking work and release connections (threads finish their current job)."""
        ...
