"""Conversion at scale: slides submitted as jobs (storage.jobs.JobQueue), converted by workers
straight into the archive. PostgreSQL index: procrastinate's queue and `wsiarchive worker`
processes; SQLite: a thread pool in the submitting process."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from wsiarchive.settings import JobQueueKind, Settings

# The archive, the converter and the runner are imported when a queue is made, not when the
# command line is parsed: `serve` must set up its metrics directory before the core loads
# prometheus-client (wsiarchive.run).
if TYPE_CHECKING:
    from converter import ConversionOptions
    from storage import Archive
    from storage.jobs import JobQueue
    from wsiarchive.jobs.runner import Runner


def worker_name() -> str:
    """How a worker names itself in the jobs it runs: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def make_runner(archive: Archive, settings: Settings, options: ConversionOptions) -> Runner:
    """The one runner of jobs, with the settings' conversion options and slide metadata."""
    from converter import SlideInfo
    from wsiarchive.jobs.runner import Runner

    info = SlideInfo()
    if settings.slide_metadata:
        info = SlideInfo.from_json(Path(settings.slide_metadata))
    return Runner(archive, options, info, worker_name(), settings.job_retry_seconds)


def open_queue(archive: Archive, settings: Settings) -> JobQueue | None:
    """The job queue the settings configure (None for job_queue = none)."""
    kind = settings.job_queue
    if kind is JobQueueKind.NONE:
        return None
    if kind is JobQueueKind.POSTGRESQL:
        from wsiarchive.jobs.postgres import PostgresQueue

        return PostgresQueue(archive, settings.database, settings.job_max_attempts)
    from wsiarchive.jobs.inprocess import InProcessQueue
    from wsiarchive.options import conversion_options

    run = make_runner(archive, settings, conversion_options(settings, interactive=False))
    return InProcessQueue(run, settings.job_max_attempts, settings.job_threads)
