"""The in-process job queue of an archive on SQLite: a thread pool in the submitting process
runs each job through the runner, retrying after a delay; jobs still queued when a process
stopped are taken up by the next process that opens the queue."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from storage.access import Principal
from storage.jobs import Job, JobState
from wsiarchive.jobs.common import Submitting
from wsiarchive.jobs.runner import Next, Runner

log = logging.getLogger(__name__)


class InProcessQueue(Submitting):
    """Implements storage.jobs.JobQueue with *threads* slides converted at once."""

    def __init__(self, runner: Runner, max_attempts: int, threads: int = 1) -> None:
        super().__init__(runner.archive, max_attempts)
        self._runner = runner
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="conversion-job")
        self._stopping = threading.Event()
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        for job in self.records.recent(JobState.QUEUED, limit=10_000):
            self._pool.submit(self._run, job.job_id)  # left by a process that stopped

    def submit(self, source: str, metadata: str, *, who: Principal, uploaded: bool = False) -> Job:
        job = self._record(source, metadata, who, uploaded)
        self._pool.submit(self._run, job.job_id)
        return job

    def _run(self, job_id: str) -> None:
        if self._stopping.is_set():
            return
        try:
            ran = self._runner.run(job_id, self._stopping.is_set)
        except Exception:
            log.exception("job %s: the runner failed", job_id)
            return
        if ran.next is Next.RETRY and not self._stopping.is_set():
            timer = threading.Timer(ran.delay, self._again, (job_id,))
            timer.daemon = True
            with self._lock:
                self._timers.add(timer)
            timer.start()

    def _again(self, job_id: str) -> None:
        with self._lock:
            self._timers = {t for t in self._timers if t.is_alive()}
        if not self._stopping.is_set():
            self._pool.submit(self._run, job_id)

    def close(self) -> None:
        """Stop: a job in progress goes back to the queue (as queued) for the next process."""
        self._stopping.set()
        with self._lock:
            for timer in self._timers:
                timer.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
