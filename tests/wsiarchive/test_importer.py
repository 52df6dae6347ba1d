"""Importing a vendor slide is all or nothing, even when the importing process dies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.inprocess import client, open_at

SLIDE = "svs/CMU-1-Small-Region.svs"
METADATA = [
    "--container-id",
    "CRASH-1",
    "--anatomy",
    "SCT:39607008:Lung structure",
    "--stain",
    "hematoxylin stain",
]
# `wsiarchive import` that dies like a kill -9 (no rollback, no `finally`) as it places the
# blob of the slide's fourth instance: the first three are through by then.
DYING_IMPORT = """
import os, sys
from storage.blobs.filesystem import FilesystemBlobStore
from wsiarchive.cli import main

place, placed = FilesystemBlobStore.place, []

def dying(self, staged, key):
    placed.append(key)
    if len(placed) == 4:
        os._exit(137)
    place(self, staged, key)

FilesystemBlobStore.place = dying
sys.exit(main(sys.argv[1:]))
"""


def _import(data: Path, slide: Path, program: list[str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, *program, "import", "--data-dir", str(data), *METADATA]
    return subprocess.run([*command, str(slide)], capture_output=True, text=True, check=False)


def _listed(data: Path) -> int:
    archive, settings = open_at(data)
    try:
        response = client(archive, settings).get("/dicomweb/instances")
        return len(response.get_json() or []) if response.status_code == 200 else 0
    finally:
        archive.close()


def test_an_import_dying_mid_slide_leaves_none_of_it_visible(tmp_path, testdata) -> None:
    data = tmp_path / "archive"
    died = _import(data, testdata / SLIDE, ["-c", DYING_IMPORT])
    assert died.returncode == 137, died.stderr
    assert _listed(data) == 0  # not 3 of the slide's instances
    archive, _ = open_at(data)
    try:
        assert archive.recover() > 0  # the dead import's claims and its workspace
    finally:
        archive.close()
    assert [p for p in (data / "blobs").rglob("*") if p.is_file()] == []
    again = _import(data, testdata / SLIDE, ["-m", "wsiarchive"])
    assert again.returncode == 0, again.stderr
    assert _listed(data) == 7  # the whole slide (5 levels, label, overview)
