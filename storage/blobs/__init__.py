"""Blob stores: where instance bytes live (the protocol, and the filesystem implementation)."""

from storage.blobs.filesystem import FilesystemBlobStore
from storage.blobs.protocol import BlobStore
from storage.blobs.staged import DirectWriter, StagedBlob

__all__ = ["BlobStore", "DirectWriter", "FilesystemBlobStore", "StagedBlob"]
