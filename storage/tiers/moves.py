"""Moving one blob between tiers, two-phase like an ingest: copy it into the target tier
(streamed; in place when both tiers share a store), commit the row's new key, then delete the
old copy. A crash leaves one extra copy that no row names: `verify` lists it as an orphan and
`--repair` quarantines it."""

from __future__ import annotations

from storage.blobs import BlobStore
from storage.errors import ArchiveError
from storage.index.tiers import Placed, TierIndex
from storage.tiers.config import Tier
from storage.tiers.store import ClassedStore, TieredBlobStore

CHUNK = 8 << 20  # bytes read and written at a time


def move(blobs: TieredBlobStore, index: TierIndex, placed: Placed, target: Tier) -> bool:
    """Move the blob of *placed* into *target*; False when the row changed meanwhile (the
    copy is then removed again and nothing else is touched)."""
    source, raw = blobs.split(placed.blob_key)
    new_key = blobs.key_in(target.name, raw)
    column = "" if target.name == blobs.first.name else target.name
    here, there = blobs.store_of(source.name), blobs.store_of(target.name)
    if here is there:
        # One object, another class: S3 CopyObject onto itself / Azure Set Blob Tier.
        if target.storage_class and isinstance(there, ClassedStore):
            there.set_storage_class(raw, target.storage_class)
        return index.commit_move(placed.pk, placed.blob_key, new_key, column)
    copy(here, there, raw, placed.content_hash)
    if not index.commit_move(placed.pk, placed.blob_key, new_key, column):
        there.delete(raw)
        return False
    here.delete(raw)
    return True


def copy(source: BlobStore, target: BlobStore, key: str, expected_hash: str | None) -> None:
    """Copy blob *key* from one store to another, streamed through the target's staging and
    placed atomically, after checking its SHA-256 against the one recorded at ingest."""
    staged = target.stage()
    try:
        with source.open(key) as fp:
            while chunk := fp.read(CHUNK):
                staged.write(chunk)
        staged.finish()
        if expected_hash is not None and staged.content_hash != expected_hash:
            raise ArchiveError(
                f"blob {key} does not match its recorded SHA-256: not moved (run verify)"
            )
        target.place(staged, key)
    finally:
        staged.discard()
