"""Blobs as files under one root, staged in ``.staging`` and renamed into place."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import BinaryIO

from storage.blobs.staged import StagedBlob, raise_resources
from storage.blobs.staging import LocalStaging
from storage.errors import BlobMissing


class FilesystemBlobStore(LocalStaging):
    """Blobs as files under one root; staged in ``.staging`` then renamed into place."""

    STAGING = ".staging"
    QUARANTINE = ".quarantine"

    def __init__(self, root: Path, fsync: bool) -> None:
        self.root = root.resolve()
        super().__init__(self.root / self.STAGING, fsync)

    # -- paths ---------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        """The file of *key*; keys are made by the archive from validated UIDs."""
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"bad blob key {key!r}")
        if parts[0] in (self.STAGING, self.QUARANTINE):
            raise ValueError(f"bad blob key {key!r}")
        return self.root.joinpath(*parts)

    # -- writing (staging: LocalStaging) ------------------------------------------------
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
        self.probe_staging()

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

    def prefetch(self, key: str, ranges: Sequence[tuple[int, int]]) -> None:
        """Nothing to do: each pread is served from the page cache or the disk at once."""

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
