"""Readiness: whether this process can serve, one cheap check per dependency (the index at
this build's schema revision, the blob store reachable)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from storage.blobs import BlobStore
from storage.index.engine import Database
from storage.records import Check

log = logging.getLogger(__name__)


def _index(database: Database) -> None:
    if not database.is_current():
        raise _Failed("the index is not at this build's schema revision")


class _Failed(Exception):
    """A check's own reason (shown as it is)."""


def _timed(name: str, probe: Callable[[], None], reason: str) -> Check:
    started = time.perf_counter()
    try:
        probe()
    except _Failed as exc:
        return Check(name, False, time.perf_counter() - started, str(exc))
    except Exception as exc:
        # The exception may name hosts and paths: logged here, not shown on the wire.
        log.debug("readiness check %s failed: %s", name, exc)
        return Check(name, False, time.perf_counter() - started, reason)
    return Check(name, True, time.perf_counter() - started)


def checks(database: Database, blobs: BlobStore) -> list[Check]:
    """The index and the blob store checked, in that order."""
    return [
        _timed("index", lambda: _index(database), "the index cannot be reached"),
        _timed("blobs", blobs.probe, "the blob store cannot be reached"),
    ]
