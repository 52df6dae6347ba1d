"""Running one conversion job: convert the slide into the staging area, store it whole
(Archive.ingest_staged_files: all of its instances or none), record the outcome.

Every queue runs jobs through this one path; what a queue does next (nothing, retry after a
delay, hand the job to another worker) is the ``Ran`` this returns."""

from __future__ import annotations

import errno
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from converter import ConversionError, ConversionOptions, SlideInfo, convert
from storage import Archive
from storage.access import Principal, PrincipalKind, Scope
from storage.errors import ArchiveError, IndexUnavailable, OutOfResources
from storage.jobs import Job
from wsiarchive.importer import study_for

log = logging.getLogger(__name__)

PROGRESS_EVERY = 1.0  # seconds between progress updates written to the index
# Failures of the machine rather than of the slide: the job is tried again.
# EFBIG: a file-size limit reached, as the disk-full tests make one.
TRANSIENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EAGAIN, errno.ENOMEM,
     errno.ETIMEDOUT, errno.ESTALE, errno.EMFILE, errno.ENFILE}
)  # fmt: skip


class Next(StrEnum):
    """What the queue does with a job after a run."""

    DONE = "done"  # nothing more: stored, or already final
    FAILED = "failed"  # nothing more: given up, the reason recorded
    RETRY = "retry"  # run it again after ``delay`` seconds (any worker)
    RELEASED = "released"  # the worker stops: run it again at once (another worker)


@dataclass(frozen=True)
class Ran:
    next: Next
    delay: float = 0.0


class Stopping(BaseException):
    """The worker was asked to stop mid-job (SIGTERM): the job goes back to the queue. A
    BaseException, so the converter does not take it for a failure of the slide."""


def transient(exc: BaseException) -> bool:
    """True when a failure is the machine's (index unreachable, disk full, I/O error), so
    another attempt may succeed; False when it is the slide's (corrupt, unsupported)."""
    for cause in (exc, exc.__cause__):
        if isinstance(cause, IndexUnavailable | OutOfResources):
            return True
        if isinstance(cause, OSError) and cause.errno in TRANSIENT_ERRNOS:
            return True
        if isinstance(cause, MemoryError):
            return True
    if isinstance(exc, ConversionError | ArchiveError | FileNotFoundError):
        return False
    return not isinstance(exc, ValueError | TypeError)  # an unexpected error: tried again


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, ArchiveError):
        return exc.reason
    if isinstance(exc, ConversionError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def worker_principal(job: Job, worker: str) -> Principal:
    """Who stores a job's instances: the archive's worker on behalf of the submitter."""
    return Principal(
        job.submitted_by or "worker",
        PrincipalKind.LOCAL,
        frozenset({Scope.READ, Scope.WRITE}),
        source=f"worker:{worker}",
    )


@dataclass
class Runner:
    """Runs jobs of *archive* with the settings' conversion options and slide metadata."""

    archive: Archive
    options: ConversionOptions
    info: SlideInfo
    worker: str
    retry_seconds: float = 10.0

    def run(
        self, job_id: str, stop: Callable[[], bool] = lambda: False, take_over: bool = False
    ) -> Ran:
        """One run of a job: the job is stored, failed, or back in the queue afterwards.
        *take_over*: the queue delivers this job to this worker alone, so a record still
        running belongs to a run that died."""
        records = self.archive.job_records
        started = records.start(job_id, self.worker, take_over)
        if started is None:
            return Ran(Next.DONE)  # final already (delivered twice) or unknown
        job, run = started
        log.info("job %s: attempt %d of %s", job_id, job.attempts, job.source)
        try:
            study, uids = self._convert(job, run, stop)
        except Stopping:
            records.requeue(job_id, run, "", attempt_counts=False)
            log.info("job %s released: the worker stops", job_id)
            return Ran(Next.RELEASED)
        except Exception as exc:
            reason = reason_of(exc)
            if transient(exc) and job.attempts < job.max_attempts:
                delay = self.retry_seconds * 2 ** (job.attempts - 1)
                records.requeue(job_id, run, reason, attempt_counts=True)
                log.warning("job %s: %s (retrying in %.0f s)", job_id, reason, delay)
                return Ran(Next.RETRY, delay)
            if transient(exc):
                reason = f"{reason} (attempt {job.attempts} of {job.max_attempts})"
            records.fail(job_id, run, reason)
            log.warning("job %s failed: %s", job_id, reason)
            return Ran(Next.FAILED)
        if not records.finish(job_id, run, study, uids):
            log.error("job %s: stored, but its run was taken over meanwhile", job_id)
        log.info("job %s done: %d instances in study %s", job_id, len(uids), study)
        if job.uploaded:
            shutil.rmtree(Path(job.source).parent, ignore_errors=True)
        return Ran(Next.DONE)

    def _convert(self, job: Job, run: str, stop: Callable[[], bool]) -> tuple[str, list[str]]:
        records = self.archive.job_records
        who = worker_principal(job, self.worker)
        info = self.info
        if job.metadata:
            data = json.loads(job.metadata)
            info = info.updated(**vars(SlideInfo.from_mapping(data, f"job {job.job_id}")))
        last = [0.0]

        def progress(_name: str, done: int, total: int) -> None:
            if stop():
                raise Stopping
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY or done >= total:
                last[0] = now
                records.progress(job.job_id, run, done, total)

        options = replace(
            self.options,
            tile_progress=progress,
            progress=None,
            warn=lambda text: log.warning("job %s: %s", job.job_id, text),
        )
        workspace = self.archive.workspace()
        try:
            if stop():
                raise Stopping
            files = convert(
                Path(job.source),
                workspace,
                info,
                options,
                lambda found: study_for(self.archive, found, who),
            )
            if not records.owns(job.job_id, run):
                raise Stopping  # the lease was lost (taken for dead): the other run stores it
            stored = self.archive.ingest_staged_files(files, who=who)
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
        study = stored[0].study if stored else ""
        return study, [item.instance for item in stored]
