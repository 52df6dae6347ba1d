"""The conversion_job table: one row per submitted slide, moved through its states by the
workers; each run of a job gets a run token, and only the run holding it may change the row."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from storage.index.engine import WRITE
from storage.index.models import ConversionJob
from storage.jobs import Job, JobState

REASON_LENGTH = 2000  # conversion_job.reason


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _job(row: ConversionJob) -> Job:
    return Job(
        job_id=row.job_id,
        source=row.source,
        metadata=row.metadata_json,
        state=JobState(row.state),
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        submitted_by=row.submitted_by,
        submitted_at=row.submitted_at,
        updated_at=row.updated_at,
        uploaded=row.uploaded,
        worker=row.worker,
        frames_done=row.frames_done,
        frames_total=row.frames_total,
        study_uid=row.study_instance_uid,
        instance_uids=tuple(row.instance_uids.split()),
        reason=row.reason,
    )


class JobStore:
    """Implements storage.jobs.JobRecords on the index's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self, write: bool = False) -> Session:
        return Session(self.engine.execution_options(**WRITE) if write else self.engine)

    def create(
        self, source: str, metadata: str, max_attempts: int, submitted_by: str, uploaded: bool
    ) -> Job:
        now = _now()
        row = ConversionJob(
            job_id=secrets.token_hex(16),
            source=source,
            metadata_json=metadata,
            uploaded=uploaded,
            state=JobState.QUEUED.value,
            attempts=0,
            max_attempts=max(1, max_attempts),
            run="",
            worker="",
            frames_done=0,
            frames_total=0,
            study_instance_uid="",
            instance_uids="",
            reason="",
            submitted_by=submitted_by,
            submitted_at=now,
            updated_at=now,
        )
        with self._session(write=True) as session, session.begin():
            session.add(row)
            session.flush()
            return _job(row)

    def get(self, job_id: str) -> Job | None:
        with self._session() as session:
            row = session.scalar(select(ConversionJob).where(ConversionJob.job_id == job_id))
            return _job(row) if row is not None else None

    def recent(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        query = select(ConversionJob).order_by(
            ConversionJob.submitted_at.desc(), ConversionJob.pk.desc()
        )
        if state is not None:
            query = query.where(ConversionJob.state == state.value)
        with self._session() as session:
            return [_job(row) for row in session.scalars(query.limit(limit))]

    def depth(self) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        query = select(ConversionJob.state, func.count()).group_by(ConversionJob.state)
        with self._session() as session:
            for state, count in session.execute(query):
                counts[JobState(state)] = count
        return counts

    def start(self, job_id: str, worker: str, take_over: bool) -> tuple[Job, str] | None:
        """Begin a run of a queued job, or with *take_over* of a running one whose worker
        died (the queue says so): a new run token (the dead run loses its), one more
        attempt. None when the job is final, unknown, or (without *take_over*) running."""
        run = secrets.token_hex(16)
        takes = [JobState.QUEUED.value] + ([JobState.RUNNING.value] if take_over else [])
        statement = (
            update(ConversionJob)
            .where(ConversionJob.job_id == job_id, ConversionJob.state.in_(takes))
            .values(
                state=JobState.RUNNING.value,
                run=run,
                worker=worker[:256],
                attempts=ConversionJob.attempts + 1,
                frames_done=0,
                frames_total=0,
                updated_at=_now(),
            )
        )
        with self._session(write=True) as session, session.begin():
            if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
                return None
        job = self.get(job_id)
        return (job, run) if job is not None else None

    def _update(self, job_id: str, owner: str | None, **values: object) -> bool:
        """Change a job's row if the run *owner* holds it (None: whoever does)."""
        statement = update(ConversionJob).where(ConversionJob.job_id == job_id)
        if owner is not None:
            statement = statement.where(ConversionJob.run == owner)
        statement = statement.values(updated_at=_now(), **values)
        with self._session(write=True) as session, session.begin():
            return bool(session.execute(statement).rowcount == 1)  # type: ignore[attr-defined]

    def owns(self, job_id: str, run: str) -> bool:
        with self._session() as session:
            found = session.scalar(
                select(ConversionJob.run).where(
                    ConversionJob.job_id == job_id,
                    ConversionJob.state == JobState.RUNNING.value,
                )
            )
        return found == run

    def progress(self, job_id: str, run: str, done: int, total: int) -> None:
        self._update(job_id, run, frames_done=done, frames_total=total)

    def finish(self, job_id: str, run: str, study: str, instances: list[str]) -> bool:
        return self._update(
            job_id,
            run,
            state=JobState.DONE.value,
            run="",
            study_instance_uid=study,
            instance_uids=" ".join(instances),
            reason="",
        )

    def requeue(self, job_id: str, run: str, reason: str, attempt_counts: bool) -> None:
        """Back to the queue: after a retryable failure (*reason*), or released by a worker
        that stops (its attempt then does not count)."""
        values: dict[str, object] = {"state": JobState.QUEUED.value, "run": ""}
        if reason:
            values["reason"] = reason[:REASON_LENGTH]
        if not attempt_counts:
            values["attempts"] = ConversionJob.attempts - 1
        self._update(job_id, run, **values)

    def fail(self, job_id: str, run: str | None, reason: str) -> None:
        failed = JobState.FAILED.value
        self._update(job_id, run, state=failed, run="", reason=reason[:REASON_LENGTH])
