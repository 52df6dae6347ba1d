"""The local staging area every blob store receives into: staged uploads, workspaces for
converted slides, and the purge of what interrupted writes left."""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

from storage.blobs.staged import StagedBlob, raise_resources
from storage.dicom.part10 import PREAMBLE, lacks_preamble


class LocalStaging:
    """A staging directory on local disk: incoming bytes are written (and hashed) here before
    a store places them under their key."""

    def __init__(self, staging: Path, fsync: bool) -> None:
        self.staging = staging
        self.fsync = fsync
        self.staging.mkdir(parents=True, exist_ok=True)

    def _name(self, suffix: str) -> Path:
        return self.staging / f"{time.time_ns():x}-{secrets.token_hex(8)}{suffix}"

    def probe_staging(self) -> None:
        """A file can be made (and removed) in the staging area now (readiness)."""
        path = self._name(".probe")
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(path)

    def stage(self) -> StagedBlob:
        """A new empty staged blob."""
        try:
            return StagedBlob(self._name(".part"), self.fsync)
        except OSError as exc:
            raise_resources(exc)
            raise

    def workspace(self) -> Path:
        """A new empty directory in the staging area, for files made to be stored (converted
        slides): on the staging filesystem, so staging them is never a copy."""
        path = self._name(".work")
        path.mkdir()
        return path

    def staging_area(self) -> Path:
        return self.staging

    def adopt(self, path: Path) -> StagedBlob:
        """Stage a complete file that lies inside the staging area."""
        if self.staging.resolve() not in path.resolve().parents:
            raise ValueError(f"{path} is not in the staging area")
        return StagedBlob.adopt(path, self.fsync)

    def stage_copy(self, source: Path) -> StagedBlob:
        """A staged blob holding a copy of *source* (read once, hashed on the way)."""
        staged = self.stage()
        try:
            with open(source, "rb") as src:
                if lacks_preamble(os.pread(src.fileno(), 132, 0)):
                    staged.write(PREAMBLE)
                staged.copy_from(src.fileno())
            staged.finish()
        except BaseException:
            staged.discard()
            raise
        return staged

    def purge_staging(self, older_than_seconds: float = 0.0) -> int:
        """Delete staged files left by interrupted uploads; returns how many were removed."""
        removed = 0
        limit = time.time() - older_than_seconds
        for entry in self.staging.iterdir():
            try:
                if entry.stat().st_mtime <= limit:
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
