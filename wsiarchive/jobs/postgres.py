"""The job queue of an archive on PostgreSQL: procrastinate's tables in the index's database
(created by the index's migration 0006) carry the jobs to `wsiarchive worker` processes on any
machine. Fetching takes a job with FOR UPDATE SKIP LOCKED, so each is delivered to one worker;
a retry is a job scheduled again (any worker takes it); each worker beats a heartbeat, and
every worker gives the job of a worker silent for the lease back to the queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import procrastinate
from procrastinate import exceptions as queue_errors
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from storage.access import Principal
from storage.jobs import Job
from wsiarchive.jobs.common import Submitting
from wsiarchive.jobs.runner import Next, Runner

log = logging.getLogger(__name__)

TASK, QUEUE = "wsiarchive.convert", "conversion"
HEARTBEAT_FRACTION = 5  # heartbeats per lease


def conninfo(database_url: str) -> str:
    """The libpq URL of the index's SQLAlchemy URL (postgresql+psycopg://... )."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError(f"job_queue = postgresql needs a PostgreSQL database_url, not {scheme!r}")
    return "postgresql://" + rest


class _Again(Exception):
    """The runner asks for another run after *delay* seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.0f} s")
        self.delay = delay


class _Strategy(BaseRetryStrategy):
    """Retries are the runner's decision (one policy for every queue): procrastinate only
    schedules them. A job aborted because its worker stops is released at once."""

    def get_retry_decision(self, *, exception: BaseException, job: Any) -> RetryDecision | None:
        if isinstance(exception, _Again):
            return RetryDecision(retry_in={"seconds": int(exception.delay + 0.999)})
        if isinstance(exception, queue_errors.JobAborted):
            return RetryDecision(retry_in={"seconds": 0})
        return None


def _app(database_url: str) -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(conninfo=conninfo(database_url))
    return procrastinate.App(connector=connector)


class PostgresQueue(Submitting):
    """Implements storage.jobs.JobQueue for submitters (servers, `submit`, `watch`)."""

    def __init__(self, archive: Any, database_url: str, max_attempts: int) -> None:
        super().__init__(archive, max_attempts)
        self.app = _app(database_url)
        self._task = self.app.task(name=TASK, queue=QUEUE)(_unbound)
        self.app.open()

    def submit(self, source: str, metadata: str, *, who: Principal, uploaded: bool = False) -> Job:
        job = self._record(source, metadata, who, uploaded)
        try:
            self._task.defer(job=job.job_id)
        except Exception as exc:
            self.records.fail(job.job_id, None, f"could not be queued: {exc}")
            raise
        return job

    def close(self) -> None:
        self.app.close()


def _unbound(job: str) -> None:  # the submitters' view of the task: only its name matters
    raise RuntimeError("conversion jobs run in `wsiarchive worker`")


def run_worker(runner: Runner, database_url: str, lease_seconds: float, wait: bool = True) -> None:
    """Take jobs until SIGTERM or SIGINT; the job in progress is then released (queued again
    for another worker, its attempt not counted) and the worker exits."""
    app = _app(database_url)

    @app.task(name=TASK, queue=QUEUE, pass_context=True, retry=_Strategy())
    def convert(context: procrastinate.JobContext, job: str) -> None:
        ran = runner.run(job, context.should_abort, take_over=True)
        if ran.next is Next.RETRY:
            raise _Again(ran.delay)
        if ran.next is Next.RELEASED:
            raise queue_errors.JobAborted("released: the worker stops")

    asyncio.run(_work(app, runner.worker, lease_seconds, wait))


async def _work(app: procrastinate.App, name: str, lease: float, wait: bool) -> None:
    async with app.open_async():
        worker = app._worker(  # noqa: SLF001 (run_worker_async makes one the same way)
            queues=[QUEUE],
            name=name,
            concurrency=1,
            wait=wait,
            shutdown_graceful_timeout=0,
            install_signal_handlers=False,
            update_heartbeat_interval=max(0.5, lease / HEARTBEAT_FRACTION),
            stalled_worker_timeout=lease,
            fetch_job_polling_interval=1.0,
        )
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, worker.stop)
        reaper = asyncio.create_task(_release_stalled(app, lease))
        try:
            await worker.run()
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper


async def _release_stalled(app: procrastinate.App, lease: float) -> None:
    """Queue again the jobs of workers whose heartbeat stopped (killed, or their machine
    lost): the next run takes the job's record over with a new run token."""
    while True:
        await asyncio.sleep(max(1.0, lease / 2))
        try:
            stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=lease)
            for job in stalled:
                log.warning("job %s: its worker stopped beating; queued again", job.id)
                await app.job_manager.retry_job(job)
        except Exception as exc:  # the index unreachable: try again next period
            log.warning("cannot look for stalled jobs: %s", exc)
