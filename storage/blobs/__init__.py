"""Blob stores: where instance bytes live (the protocol, the filesystem store, the object
store), and the one choice between them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.blobs.filesystem import FilesystemBlobStore
from storage.blobs.protocol import BlobStore
from storage.blobs.staged import DirectWriter, StagedBlob

if TYPE_CHECKING:
    from storage.config import ArchiveConfig

__all__ = ["BlobStore", "DirectWriter", "FilesystemBlobStore", "StagedBlob", "open_blob_store"]


def open_blob_store(config: ArchiveConfig) -> BlobStore:
    """The store *config* names: objects under ``blob_url`` (staged in <blobs>/.staging), or
    files under ``blobs`` when it is empty."""
    if not config.blob_url:
        return FilesystemBlobStore(config.blobs, config.fsync)
    from storage.blobs.objectstore import ObjectBlobStore  # obstore loads only when used

    return ObjectBlobStore(
        config.blob_url,
        config.blob_options,
        config.blobs.resolve() / FilesystemBlobStore.STAGING,
        config.blob_cache_mb << 20,
        config.blob_coalesce_kb << 10,
    )
