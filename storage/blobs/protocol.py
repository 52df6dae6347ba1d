"""What the archive needs from a blob store: staging, atomic placement, ranged reads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol

from storage.blobs.staged import StagedBlob


class BlobStore(Protocol):
    """A store of immutable blobs by key, with a local staging area for incoming bytes.

    A blob is never rewritten: storing an instance again places a new blob under a new key.
    """

    def stage(self) -> StagedBlob:
        """A new empty staged blob (OutOfResources when the staging area is full)."""
        ...

    def stage_copy(self, source: Path) -> StagedBlob:
        """A finished staged blob holding a copy of a local Part-10 file."""
        ...

    def adopt(self, path: Path) -> StagedBlob:
        """A staged blob for a complete file made inside the staging area (no copy)."""
        ...

    def workspace(self) -> Path:
        """A new empty local directory inside the staging area, for files made to be stored."""
        ...

    def staging_area(self) -> Path:
        """The local directory that staged files live in (a receiver may write there)."""
        ...

    def place(self, staged: StagedBlob, key: str) -> None:
        """Make a finished staged blob the blob *key*, atomically and durably."""
        ...

    def open(self, key: str) -> BinaryIO:
        """The blob for sequential reading (BlobMissing when it is gone)."""
        ...

    def read_ranges(self, key: str, ranges: Iterable[tuple[int, int]]) -> Iterator[bytes]:
        """The bytes of each (offset, length) range of the blob, in order."""
        ...

    def prefetch(self, key: str, ranges: Sequence[tuple[int, int]]) -> None:
        """A hint that these ranges will be read soon (a request's frames): a remote store
        fetches them together, coalesced, into its cache; a local one does nothing."""
        ...

    def local_file(self, key: str) -> AbstractContextManager[Path]:
        """A local file holding the blob while the context lasts (for senders that stream
        from a path)."""
        ...

    def size(self, key: str) -> int:
        """The blob's length in bytes (BlobMissing when it is gone)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob if it exists."""
        ...

    def blob_keys(self) -> Iterator[tuple[str, float]]:
        """Every blob's key and modification time (seconds since the epoch)."""
        ...

    def quarantine(self, key: str) -> str:
        """Move a blob out of the store, kept for a person to look at; returns where."""
        ...

    def probe(self) -> None:
        """Raise (OSError or an ArchiveError) unless the store can be written and read now:
        cheap enough for a readiness check every few seconds (an object store: a HEAD or a
        one-key list of the bucket)."""
        ...

    def purge_staging(self, older_than_seconds: float = 0.0) -> int:
        """Remove what interrupted writes left in the staging area; returns a count."""
        ...
