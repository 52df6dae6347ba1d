"""The run directory of one `serve`: the metrics files its processes share (prometheus-client's
multiprocess mode) and the flag saying it is draining. Made fresh at each start, removed at
the end; import it before anything imports prometheus-client (it reads the variable then)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

RUN_DIR = "WSIARCHIVE_RUN_DIR"  # not a setting: made by serve for its own processes
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's variable
DRAINING = "draining"


@contextlib.contextmanager
def run_directory(metrics: bool) -> Iterator[Path]:
    """A new run directory for this serve and its processes (named in the environment they
    inherit), with the metrics directory when *metrics* are on."""
    path = Path(tempfile.mkdtemp(prefix="wsiarchive-run-"))
    saved = {name: os.environ.get(name) for name in (RUN_DIR, MULTIPROCESS)}
    os.environ[RUN_DIR] = str(path)
    if metrics:
        (path / "metrics").mkdir()
        os.environ[MULTIPROCESS] = str(path / "metrics")
    else:
        os.environ.pop(MULTIPROCESS, None)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def start_draining() -> None:
    """Mark this run as draining: every process's readiness answers 503 from now on."""
    run = os.environ.get(RUN_DIR)
    if run:
        (Path(run) / DRAINING).touch()


def draining() -> bool:
    """True once this run was asked to drain (a stat: readiness asks it often)."""
    run = os.environ.get(RUN_DIR)
    return run is not None and os.path.exists(os.path.join(run, DRAINING))
