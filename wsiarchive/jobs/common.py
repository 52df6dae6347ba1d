"""What every job queue shares: recording a submission, reading jobs, the queue depth."""

from __future__ import annotations

import json

from converter import ConversionError, SlideInfo
from storage import Archive
from storage.access import Principal, Scope, require
from storage.errors import InvalidRequest, NotFound
from storage.jobs import Job, JobRecords, JobState

MAX_LISTED = 1000  # most jobs one listing returns


class Submitting:
    """The records side of storage.jobs.JobQueue; a backend adds handing jobs to workers."""

    def __init__(self, archive: Archive, max_attempts: int) -> None:
        self.archive = archive
        self.records: JobRecords = archive.job_records
        self.max_attempts = max(1, max_attempts)

    def _record(self, source: str, metadata: str, who: Principal, uploaded: bool) -> Job:
        require(who, Scope.WRITE)
        if not source or "\x00" in source:
            raise InvalidRequest("a job needs the path of a slide file")
        if metadata:
            try:
                data = json.loads(metadata)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                SlideInfo.from_mapping(data, "slide metadata")
            except (ValueError, ConversionError) as exc:
                raise InvalidRequest(f"slide metadata: {exc}") from exc
        return self.records.create(source, metadata, self.max_attempts, who.subject, uploaded)

    def job(self, job_id: str, *, who: Principal) -> Job:
        require(who, Scope.WRITE)
        found = self.records.get(job_id) if job_id.isalnum() and len(job_id) <= 32 else None
        if found is None:
            raise NotFound(f"no conversion job {job_id[:40]!r}")
        return found

    def jobs(self, state: JobState | None = None, limit: int = 100, *, who: Principal) -> list[Job]:
        require(who, Scope.WRITE)
        return self.records.recent(state, max(1, min(limit, MAX_LISTED)))

    def depth(self) -> dict[JobState, int]:
        return self.records.depth()


def metadata_json(info: SlideInfo) -> str:
    """A slide's metadata as a job carries it: the JSON object of its non-empty fields."""
    from dataclasses import asdict

    values = {k: v for k, v in asdict(info).items() if v not in (None, "", [], ())}
    return json.dumps(values, sort_keys=True) if values else ""
