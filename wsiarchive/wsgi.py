"""The WSGI application factory the HTTP server's workers load (settings from WSIARCHIVE_*)."""

from __future__ import annotations

import gc

from flask import Flask

from dicomweb import create_app
from storage import open_archive
from wsiarchive import settings as settings_module


def create_application(settings: settings_module.Settings | None = None) -> Flask:
    """Open the archive named by *settings* (default: from the environment) and serve it."""
    settings = settings or settings_module.load()
    settings_module.configure_logging(settings)
    app = create_app(open_archive(settings), settings)
    # The modules and objects loaded so far live as long as the worker: keep them out of the
    # garbage collector's full passes, which otherwise walk them all and stall requests
    # (p99 of frame requests at 32 clients: measured in benchmarks/frame_serving.py).
    gc.collect()
    gc.freeze()
    return app
