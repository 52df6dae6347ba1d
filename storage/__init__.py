"""The archive core: blob store, study index and the one door (Archive) every front door uses.

Sub-packages, from the bottom: ``dicom`` (format knowledge), ``imaging`` (codecs, tiles,
display), ``blobs``, ``index`` (the tables and their SQL), ``query`` (searching),
``retrieve`` (the read path); ``archive`` wires them behind one class.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

# Imported on first use (PEP 562), so that a tool needing one module (the converter needs
# storage.blobs) does not load SQLAlchemy and the index with it.
_HOMES = {
    "Archive": "storage.archive",
    "open_archive": "storage.archive",
    **{
        name: "storage.errors"
        for name in (
            "ArchiveError",
            "ConflictingInstance",
            "DuplicateInstance",
            "InstanceBusy",
            "InvalidInstance",
            "InvalidUID",
            "NotFound",
            "OutOfResources",
            "StudyMismatch",
        )
    },
}

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


def __getattr__(name: str) -> object:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'storage' has no attribute {name!r}")
