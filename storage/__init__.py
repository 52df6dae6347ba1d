"""The archive core: blob store, study index and the one door (Archive) every front door uses.

Sub-packages, from the bottom: ``dicom`` (format knowledge), ``imaging`` (codecs, tiles,
display), ``blobs``, ``index`` (the tables and their SQL), ``query`` (searching),
``retrieve`` (the read path); ``archive`` wires them behind one class. Errors are in
``storage.errors``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storage.archive import Archive, index_revisions, migrate_index, open_archive

__all__ = ["Archive", "index_revisions", "migrate_index", "open_archive"]


def __getattr__(name: str) -> object:
    # Imported on first use (PEP 562), so that a tool needing one module (the converter needs
    # storage.blobs) does not load SQLAlchemy and the index with it.
    if name in __all__:
        return getattr(importlib.import_module("storage.archive"), name)
    raise AttributeError(f"module 'storage' has no attribute {name!r}")
