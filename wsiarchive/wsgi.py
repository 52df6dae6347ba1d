"""The WSGI application factory the HTTP server's workers load (settings from WSIARCHIVE_*)."""

from __future__ import annotations

import gc
import logging

from flask import Flask

from dicomweb import create_app
from storage import open_archive
from wsiarchive import settings as settings_module


def create_application(settings: settings_module.Settings | None = None) -> Flask:
    """Open the archive named by *settings* (default: from the environment) and serve it."""
    settings = settings or settings_module.load()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    archive = open_archive(
        settings.database, settings.blobs, settings.duplicate_policy, settings.fsync
    )
    app = create_app(
        archive,
        settings.base_url,
        settings.max_request_bytes,
        settings.max_search_results,
        settings.cache_max_age,
        transcode_cache_bytes=settings.transcode_cache_mb << 20,
        thumbnail_size=settings.thumbnail_size,
        max_rendered_pixels=settings.max_rendered_pixels,
    )
    # The modules and objects loaded so far live as long as the worker: keep them out of the
    # garbage collector's full passes, which otherwise walk them all and stall requests
    # (p99 of frame requests at 32 clients: measured in benchmarks/frame_serving.py).
    gc.collect()
    gc.freeze()
    return app
