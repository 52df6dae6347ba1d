"""The WSGI application factory the HTTP server's workers load (settings from WSIARCHIVE_*),
and the process-wide settings of a web worker, applied once as it starts."""

from __future__ import annotations

import gc
import multiprocessing.util
import os
import signal

from flask import Flask

from dicomweb import create_app
from storage import metrics, open_archive
from wsiarchive import settings as settings_module


def create_application(settings: settings_module.Settings | None = None) -> Flask:
    """Open the archive named by *settings* (default: from the environment) and serve it."""
    _stop_on_signals_while_starting()
    settings = settings or settings_module.load()
    settings_module.configure_logging(settings)
    metrics.configure(settings.metrics)  # before the archive: its caches resolve counters
    # A worker's exit (granian's workers are multiprocessing children: atexit does not run).
    multiprocessing.util.Finalize(None, metrics.process_exited, (os.getpid(),), exitpriority=10)
    from wsiarchive.jobs import open_queue

    archive = open_archive(settings)
    if settings.metrics:
        from wsiarchive import gauges

        gauges.register(archive)
    app = create_app(archive, settings, open_queue(archive, settings))
    _freeze_startup_objects()
    return app


def _stop_on_signals_while_starting() -> None:
    """granian forks its workers with the main process's Python signal handlers and installs
    the worker's own only after this factory returns: a SIGTERM in between was handled by the
    inherited handler, which stops nothing, and the worker never exited (a server stopped
    right after it started hung until killed). Until granian takes over, the defaults stop
    the worker."""
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, signal.SIG_DFL)


def _freeze_startup_objects() -> None:
    """The modules and objects loaded so far live as long as the worker: keep them out of
    the garbage collector's full passes, which otherwise walk them all and stall requests
    (p99 of frame requests at 32 clients: measured in benchmarks/frame_serving.py)."""
    gc.collect()
    gc.freeze()
