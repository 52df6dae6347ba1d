"""The archive core: blob store, study index and the one ingest path every front door uses."""

from storage.archive import Archive, open_archive
from storage.errors import (
    ArchiveError,
    ConflictingInstance,
    DuplicateInstance,
    InstanceBusy,
    InvalidInstance,
    InvalidUID,
    NotFound,
    OutOfResources,
    StudyMismatch,
)

__all__ = [
    "Archive",
    "ArchiveError",
    "ConflictingInstance",
    "DuplicateInstance",
    "InstanceBusy",
    "InvalidInstance",
    "InvalidUID",
    "NotFound",
    "OutOfResources",
    "StudyMismatch",
    "open_archive",
]
