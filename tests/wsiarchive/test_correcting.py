"""`wsiarchive update` in one process: its exit status tells a correction refused (2) from
one that could not be done (1)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from storage import update as updating
from tests.inprocess import multiframe, open_at, store
from wsiarchive.correcting import FAILED, REFUSED, command_update


def _args(study: str, **given: object) -> argparse.Namespace:
    values: dict[str, object] = {"study": study, "series": None, "json": None, "set": None}
    return argparse.Namespace(**(values | given))


def test_exit_status_refused_or_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, _ = open_at(tmp_path / "a")
    stored = store(archive, multiframe(1, seed=1))
    archive.close()
    refused = command_update(open_at(tmp_path / "a")[0], _args(stored.study, set=["Rows=1"]))
    assert refused == REFUSED
    missing = command_update(open_at(tmp_path / "a")[0], _args(stored.study, json="/no/file"))
    assert missing == REFUSED  # the --json file cannot be read: nothing was tried

    def broken(*args: object) -> None:
        raise OSError("the disk went away")

    monkeypatch.setattr(updating, "rewrite", broken)
    failed = command_update(open_at(tmp_path / "a")[0], _args(stored.study, set=["PatientID=1"]))
    assert failed == FAILED  # a valid correction the archive could not write
