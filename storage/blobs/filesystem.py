"""Blobs as files under one root, staged in ``.staging`` and renamed into place."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import BinaryIO

from storage.blobs.staged import StagedBlob, raise_resources
from storage.dicom.part10 import PREAMBLE, lacks_preamble
from storage.errors import BlobMissing


class FilesystemBlobStore:
    """Blobs as files under one root; staged in ``.staging`` then renamed into place."""

    STAGING = ".staging"
    QUARANTINE = ".quarantine"

    def __init__(self, root: Path, fsync: bool) -> None:
        self.root = root.resolve()
        self.fsync = fsync
        self.staging = self.root / self.STAGING
        self.staging.mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        """The file of *key*; keys are made by the archive from validated UIDs."""
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"bad blob key {key!r}")
        if parts[0] in (self.STAGING, self.QUARANTINE):
            raise ValueError(f"bad blob key {key!r}")
        return self.root.joinpath(*parts)

    # -- writing -------------------------------------------------------------------------------
    def stage(self) -> StagedBlob:
        """A new empty staged blob."""
        name = f"{time.time_ns():x}-{secrets.token_hex(8)}.part"
        try:
            return StagedBlob(self.staging / name, self.fsync)
        except OSError as exc:
            raise_resources(exc)
            raise

    def workspace(self) -> Path:
        """A new empty directory in the staging area, for files made to be stored (converted
        slides): on the blobs' filesystem, so storing them is a rename."""
        path = self.staging / f"{time.time_ns():x}-{secrets.token_hex(8)}.work"
        path.mkdir()
        return path

    def staging_area(self) -> Path:
        return self.staging

    def adopt(self, path: Path) -> StagedBlob:
        """Stage a complete file that lies inside the staging area."""
        if self.staging not in path.resolve().parents:
            raise ValueError(f"{path} is not in the staging area")
        return StagedBlob.adopt(path, self.fsync)

    def stage_copy(self, source: Path) -> StagedBlob:
        """A staged blob holding a copy of *source* (kernel copy, nothing held in memory)."""
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

    def place(self, staged: StagedBlob, key: str) -> None:
        """Atomically rename a finished staged blob to *key* and make the rename durable."""
        staged.finish()
        target = self.path(key)
        created = _make_dirs(target.parent, self.root)
        try:
            os.rename(staged.path, target)
            if self.fsync:
                _fsync_dir(target.parent)
                for directory in created:
                    _fsync_dir(directory.parent)
        except OSError as exc:
            raise_resources(exc)

    def delete(self, key: str) -> None:
        """Remove the blob of *key* if it exists, and its directories once empty."""
        target = self.path(key)
        target.unlink(missing_ok=True)
        parent = target.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def probe(self) -> None:
        """The root can be listed and a file made (and removed) in the staging area. Nothing
        is written into it: a full disk still serves reads, so it leaves the store ready."""
        with os.scandir(self.root) as entries:
            next(entries, None)
        path = self.staging / f"probe-{os.getpid()}-{secrets.token_hex(4)}"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(path)

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

    def blob_keys(self) -> Iterator[tuple[str, float]]:
        """Every blob's key and modification time (staging and quarantine left out)."""
        for directory, folders, files in os.walk(self.root):
            if Path(directory) == self.root:
                folders[:] = [f for f in folders if f not in (self.STAGING, self.QUARANTINE)]
            for name in files:
                path = Path(directory) / name
                try:
                    mtime = path.stat().st_mtime
                except FileNotFoundError:
                    continue
                yield path.relative_to(self.root).as_posix(), mtime

    def quarantine(self, key: str) -> str:
        """Move a blob out of the store into the quarantine folder; returns where it went."""
        source = self.path(key)
        target = self.root / self.QUARANTINE / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
        self.delete(key)  # its emptied directories
        return str(target)

    # -- reading -------------------------------------------------------------------------------
    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError as exc:
            raise BlobMissing(f"blob {key} is missing from the store") from exc

    def read_ranges(self, key: str, ranges: Iterable[tuple[int, int]]) -> Iterator[bytes]:
        """Yield the bytes of each (offset, length) range, one pread each."""
        try:
            fd = os.open(self.path(key), os.O_RDONLY)
        except FileNotFoundError as exc:
            raise BlobMissing(f"blob {key} is missing from the store") from exc
        try:
            for offset, length in ranges:
                data = os.pread(fd, length, offset)
                if len(data) != length:
                    raise OSError(errno.EIO, f"blob {key} is shorter than its frame table")
                yield data
        finally:
            os.close(fd)

    def local_file(self, key: str) -> AbstractContextManager[Path]:
        """The blob's own file: nothing to copy on a filesystem store."""
        path = self.path(key)
        if not path.exists():
            raise BlobMissing(f"blob {key} is missing from the store")
        return nullcontext(path)

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError as exc:
            raise BlobMissing(f"blob {key} is missing from the store") from exc


def _make_dirs(directory: Path, root: Path) -> list[Path]:
    """mkdir -p, returning the directories that were created (outermost first)."""
    missing: list[Path] = []
    current = directory
    while current != root and not current.exists():
        missing.append(current)
        current = current.parent
    created: list[Path] = []
    for path in reversed(missing):
        try:
            path.mkdir()
            created.append(path)
        except FileExistsError:
            pass
        except OSError as exc:
            raise_resources(exc)
    return created


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
