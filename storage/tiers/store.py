"""The blob store of a tiered archive: one BlobStore over the stores of every tier, a blob's
key naming its tier (``cold:<key>``; the first tier's keys are plain), so the read path, delete
and verify reach the right store with no change; reads from a tier that needs a recall raise
RecallPending once the recall has been asked for."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from storage.blobs import BlobStore, FilesystemBlobStore, StagedBlob
from storage.errors import RecallPending
from storage.tiers.config import Tier, TierError

SEPARATOR = ":"  # never in a key made from UIDs
# Asked when a read meets a blob that needs a recall: records (and starts) the recall and
# returns the seconds it is expected to take still.
OnRecall = Callable[[str, Tier], float]


@runtime_checkable
class ClassedStore(Protocol):
    """A store whose blobs have a storage class (S3 storage class, Azure access tier) that
    can be changed in place, and recalled from a class that cannot be read."""

    def set_storage_class(self, key: str, storage_class: str) -> None: ...

    def start_recall(self, key: str) -> None: ...

    def recall_ready(self, key: str) -> bool: ...


class TieredBlobStore:
    """Every tier's store behind the BlobStore protocol; new blobs go to the first tier."""

    def __init__(
        self, tiers: list[Tier], stores: dict[str, BlobStore], on_recall: OnRecall
    ) -> None:
        self.tiers = {t.name: t for t in tiers}
        self.first = tiers[0]
        self._stores = stores
        self._default = stores[self.first.name]
        self.on_recall = on_recall

    # -- keys ------------------------------------------------------------------------------------
    def key_in(self, tier: str, raw: str) -> str:
        """The key of blob *raw* in *tier*."""
        return raw if tier == self.first.name else f"{tier}{SEPARATOR}{raw}"

    def split(self, key: str) -> tuple[Tier, str]:
        """The tier a key names, and the key within that tier's store."""
        name, separator, raw = key.partition(SEPARATOR)
        if not separator:
            return self.first, key
        tier = self.tiers.get(name)
        if tier is None:
            raise TierError(f"blob {key} names tier {name!r}, which is not configured")
        return tier, raw

    def store_of(self, tier: str) -> BlobStore:
        return self._stores[tier]

    def _owner(self, tier: str) -> str:
        """The first tier of *tier*'s store: the one that names the store's blobs."""
        return next(n for n in self.tiers if self._stores[n] is self._stores[tier])

    def canonical(self, key: str) -> str:
        """The key under the first tier of its store (tiers sharing a store name one blob)."""
        tier, raw = self.split(key)
        return self.key_in(self._owner(tier.name), raw)

    def needs_recall(self, key: str) -> bool:
        return self.split(key)[0].needs_recall

    def physical(self, key: str) -> tuple[BlobStore, str]:
        """The store and key of a blob, readable or not (moves and recalls)."""
        tier, raw = self.split(key)
        return self._stores[tier.name], raw

    def _readable(self, key: str) -> tuple[BlobStore, str]:
        tier, raw = self.split(key)
        if tier.needs_recall:
            # Gone from there (recalled since the record was read): BlobMissing, so that the
            # reader asks the index again, as for any stale record.
            self._stores[tier.name].size(raw)
            seconds = self.on_recall(key, tier)
            raise RecallPending(
                f"the instance is in the {tier.name} storage tier: a recall has been started "
                f"and should be done in about {seconds:.0f} s; retry then",
                retry_after=seconds,
            )
        return self._stores[tier.name], raw

    # -- the first tier receives -----------------------------------------------------------------
    def stage(self) -> StagedBlob:
        return self._default.stage()

    def stage_copy(self, source: Path) -> StagedBlob:
        return self._default.stage_copy(source)

    def adopt(self, path: Path) -> StagedBlob:
        return self._default.adopt(path)

    def workspace(self) -> Path:
        return self._default.workspace()

    def staging_area(self) -> Path:
        return self._default.staging_area()

    def place(self, staged: StagedBlob, key: str) -> None:
        store, raw = self.physical(key)
        store.place(staged, raw)

    def purge_staging(self, older_than_seconds: float = 0.0) -> int:
        return sum(s.purge_staging(older_than_seconds) for s in self._distinct())

    # -- reading, routed by the key's tier -------------------------------------------------------
    def open(self, key: str) -> BinaryIO:
        store, raw = self._readable(key)
        return store.open(raw)

    def read_ranges(self, key: str, ranges: Iterable[tuple[int, int]]) -> Iterator[bytes]:
        store, raw = self._readable(key)
        return store.read_ranges(raw, ranges)

    def prefetch(self, key: str, ranges: Sequence[tuple[int, int]]) -> None:
        store, raw = self._readable(key)
        store.prefetch(raw, ranges)

    def probe(self) -> None:
        """Every tier's store is reachable."""
        for store in self._distinct():
            store.probe()

    def local_file(self, key: str) -> AbstractContextManager[Path]:
        store, raw = self._readable(key)
        return store.local_file(raw)

    def size(self, key: str) -> int:
        store, raw = self.physical(key)
        return store.size(raw)

    def delete(self, key: str) -> None:
        store, raw = self.physical(key)
        store.delete(raw)

    def quarantine(self, key: str) -> str:
        store, raw = self.physical(key)
        return store.quarantine(raw)

    def blob_keys(self) -> Iterator[tuple[str, float]]:
        """Every blob of every store once, named by the first tier of its store."""
        for name, store in self._stores.items():
            if self._owner(name) != name:
                continue  # listed under the first tier sharing the store
            for raw, mtime in store.blob_keys():
                yield self.key_in(name, raw), mtime

    def _distinct(self) -> list[BlobStore]:
        return [self._stores[name] for name in self.tiers if self._owner(name) == name]


def store_at(location: str, fsync: bool) -> BlobStore:
    """The blob store a tier's location names: a directory."""
    if "://" in location:
        raise TierError(f"tier location {location!r}: object store tiers need blob_url support")
    return FilesystemBlobStore(Path(location), fsync)


def tiered(
    blobs: BlobStore, tiers: list[Tier], fsync: bool, on_recall: OnRecall
) -> TieredBlobStore:
    """The tiered store over *blobs* (the first tier's) and the other tiers' own stores;
    tiers at one location share one store."""
    stores: dict[str, BlobStore] = {}
    by_location: dict[str, BlobStore] = {"": blobs}
    if isinstance(blobs, FilesystemBlobStore):
        by_location[str(blobs.root)] = blobs
    for tier in tiers:
        location = str(Path(tier.location).resolve()) if tier.location else ""
        if location not in by_location:
            by_location[location] = store_at(tier.location, fsync)
        stores[tier.name] = by_location[location]
    return TieredBlobStore(tiers, stores, on_recall)


def canonical(blobs: BlobStore, key: str) -> str:
    """A key as verify compares it with the listing of the blobs."""
    return blobs.canonical(key) if isinstance(blobs, TieredBlobStore) else key


def needs_recall(blobs: BlobStore, key: str) -> bool:
    """Whether the blob cannot be read before a recall (verify leaves its bytes alone)."""
    return isinstance(blobs, TieredBlobStore) and blobs.needs_recall(key)
