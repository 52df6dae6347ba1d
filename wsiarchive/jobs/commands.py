"""The `worker`, `submit` and `jobs` commands."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage.access import local_admin
from storage.errors import ArchiveError
from storage.jobs import FINAL, Job, JobQueue, JobState
from wsiarchive import settings as settings_module
from wsiarchive.settings import JobQueueKind, Settings

Resolve = Callable[[argparse.Namespace], Settings]
SlideInfoOf = Callable[[argparse.Namespace, Settings], Any]
WAIT_POLL = 0.5  # seconds between looks at a job being waited for


def _queue(settings: Settings) -> JobQueue:
    from storage import open_archive
    from wsiarchive.jobs import open_queue

    queue = open_queue(open_archive(settings), settings)
    if queue is None:
        raise ValueError("no job queue configured: set job_queue (docs/operations.md)")
    return queue


def command_worker(args: argparse.Namespace, resolve: Resolve) -> int:
    """Take conversion jobs from the PostgreSQL index until SIGTERM (or the queue is empty)."""
    from storage import open_archive
    from wsiarchive.jobs import make_runner
    from wsiarchive.jobs.postgres import run_worker
    from wsiarchive.options import conversion_options

    settings = resolve(args)
    if settings.job_queue is not JobQueueKind.POSTGRESQL:
        raise ValueError(
            "workers take jobs from a PostgreSQL index (job_queue = postgresql); the "
            "in-process queue converts in the process that submits"
        )
    settings_module.configure_logging(settings)
    archive = open_archive(settings)
    run = make_runner(archive, settings, conversion_options(settings, interactive=False))
    run_worker(run, settings.database, settings.job_lease_seconds, wait=not args.until_empty)
    archive.close()
    return 0


def command_submit(args: argparse.Namespace, resolve: Resolve, info_of: SlideInfoOf) -> int:
    """Submit slides as conversion jobs; print each job's id (and, waiting, its outcome)."""
    from wsiarchive.jobs.common import metadata_json

    settings = resolve(args)
    metadata = metadata_json(info_of(args, settings))
    queue = _queue(settings)
    submitted: list[Job] = []
    failed = 0
    for path in args.slides:
        if not path.exists():
            print(f"error: {path}: no such file", file=sys.stderr)
            failed += 1
            continue
        job = queue.submit(str(path.resolve()), metadata, who=local_admin("submit"))
        print(f"{job.job_id} queued {path}")
        submitted.append(job)
    # The in-process queue converts in this very process: it must stay until it is done.
    if args.wait or settings.job_queue is JobQueueKind.INPROCESS:
        for job in submitted:
            ended = _wait(queue, job.job_id)
            print(_line(ended))
            failed += ended.state is not JobState.DONE
    queue.close()
    return 1 if failed else 0


def _wait(queue: JobQueue, job_id: str) -> Job:
    while True:
        job = queue.job(job_id, who=local_admin("submit"))
        if job.state in FINAL:
            return job
        time.sleep(WAIT_POLL)


def _line(job: Job) -> str:
    text = f"{job.job_id} {job.state.value:8} attempts {job.attempts}/{job.max_attempts}"
    if job.state is JobState.RUNNING:
        text += f" {job.frames_done}/{job.frames_total} frames ({job.percent:.0f}%)"
    if job.state is JobState.DONE:
        text += f" study {job.study_uid} ({len(job.instance_uids)} instances)"
    if job.reason:
        text += f" reason: {job.reason}"
    return f"{text} {job.source}"


def command_jobs(args: argparse.Namespace, resolve: Resolve) -> int:
    """List conversion jobs (newest first), or show the ones named."""
    queue = _queue(resolve(args))
    who = local_admin("jobs")
    try:
        if args.ids:
            found = [queue.job(job_id, who=who) for job_id in args.ids]
        else:
            state = JobState(args.state) if args.state else None
            found = queue.jobs(state, args.limit, who=who)
    except ArchiveError as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        return 1
    finally:
        queue.close()
    if args.json:
        print(json.dumps([job.as_json() for job in found], indent=2))
    else:
        for job in found:
            print(_line(job))
    return 0


def add_commands(
    commands: Any,
    settings_parser: Callable[[str], argparse.ArgumentParser],
    slide_parser: argparse.ArgumentParser,
    resolve: Resolve,
    info_of: SlideInfoOf,
) -> None:
    worker = commands.add_parser(
        "worker",
        parents=[settings_parser("worker")],
        help="convert slides submitted as jobs (PostgreSQL index; docs/operations.md)",
    )
    worker.add_argument(
        "--until-empty", action="store_true", help="exit once no job is left to take"
    )
    worker.set_defaults(run=lambda args: command_worker(args, resolve))
    submit = commands.add_parser(
        "submit",
        parents=[settings_parser("submit"), slide_parser],
        help="submit slides for conversion by the workers",
    )
    submit.add_argument("slides", nargs="+", type=Path, metavar="SLIDE")
    submit.add_argument("--wait", action="store_true", help="wait until every job has ended")
    submit.set_defaults(run=lambda args: command_submit(args, resolve, info_of))
    jobs = commands.add_parser(
        "jobs", parents=[settings_parser("jobs")], help="list conversion jobs and their state"
    )
    jobs.add_argument("ids", nargs="*", metavar="JOB_ID", help="show these jobs only")
    jobs.add_argument("--state", choices=[state.value for state in JobState])
    jobs.add_argument("--limit", type=int, default=100, help="most jobs listed")
    jobs.add_argument("--json", action="store_true", help="as JSON, like GET /api/jobs")
    jobs.set_defaults(run=lambda args: command_jobs(args, resolve))
