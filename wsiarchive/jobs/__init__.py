"""Conversion at scale: slides submitted as jobs (storage.jobs.JobQueue), converted by workers
straight into the archive. PostgreSQL index: procrastinate's queue and `wsiarchive worker`
processes; SQLite: a thread pool in the submitting process."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from converter import ConversionOptions, SlideInfo
from storage import Archive
from storage.jobs import JobQueue
from wsiarchive.jobs.runner import Runner
from wsiarchive.settings import JobQueueKind, Settings


def worker_name() -> str:
    """How a worker names itself in the jobs it runs: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def make_runner(archive: Archive, settings: Settings, options: ConversionOptions) -> Runner:
    """The one runner of jobs, with the settings' conversion options and slide metadata."""
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
