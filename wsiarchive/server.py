"""Running the HTTP server: granian's multi-threaded WSGI workers in front of the Flask app."""

from __future__ import annotations

import logging
import os

from granian import Granian
from granian.constants import Interfaces

from storage import open_archive
from wsiarchive.settings import Settings, to_environ

log = logging.getLogger(__name__)


def prepare(settings: Settings) -> None:
    """Create or migrate the index and undo writes a crash interrupted, before workers start."""
    archive = open_archive(
        settings.database, settings.blobs, settings.duplicate_policy, settings.fsync
    )
    archive.recover()
    archive.index.engine.dispose()


def serve(settings: Settings) -> None:
    """Serve DICOMweb until interrupted."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    prepare(settings)
    # Workers are separate processes: they read the resolved settings from the environment.
    os.environ.update(to_environ(settings))
    workers = settings.workers or os.cpu_count() or 1
    log.info(
        "serving DICOMweb at http://%s:%d/dicomweb (data in %s, %d workers x %d threads)",
        settings.host,
        settings.port,
        settings.blobs,
        workers,
        settings.threads,
    )
    Granian(
        "wsiarchive.wsgi:create_application",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=settings.threads,
        factory=True,
        log_level=settings.log_level,  # type: ignore[arg-type]
        respawn_failed_workers=True,
    ).serve()
