"""Every ArchiveError class there is: the tables of each wire protocol must name them all."""

from __future__ import annotations

import importlib
import pkgutil

import storage
from storage.errors import ArchiveError


def archive_errors() -> list[type[ArchiveError]]:
    """ArchiveError and all its subclasses, with every module of the core imported first (a
    subclass defined anywhere in storage counts)."""
    for module in pkgutil.walk_packages(storage.__path__, "storage."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    found: list[type[ArchiveError]] = []
    pending: list[type[ArchiveError]] = [ArchiveError]
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending += kind.__subclasses__()
    return found
