"""The records the core hands to its front doors: what is stored, and what an ingest did."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class StoredRecord:
    """A stored instance as a retrieve needs it."""

    pk: int
    study: str
    series: str
    instance: str
    sop_class: str
    transfer_syntax: str
    number_of_frames: int
    blob_key: str
    size: int
    stored_at: datetime | None = None
    access_group: str = ""  # of its study (storage.access)


@dataclass(frozen=True)
class StoredInstance:
    """The outcome of a successful ingest."""

    study: str
    series: str
    instance: str
    sop_class: str
    transfer_syntax: str
    number_of_frames: int
    size: int
    replaced: bool


@dataclass(frozen=True)
class InstanceFile:
    """A stored instance a search matched, as a C-MOVE / C-GET sends it."""

    study: str
    series: str
    instance: str
    sop_class: str
    transfer_syntax: str
    blob_key: str


@dataclass(frozen=True)
class ByteStream:
    """Bytes produced as they are sent, and their total length when known up front (a
    receiver can then tell a stream cut short from a complete one)."""

    chunks: Iterator[bytes]
    length: int | None


@dataclass(frozen=True)
class Check:
    """The outcome of one readiness check: what was checked, whether it passed, how long it
    took, and a short reason when it did not (never a host name or a path)."""

    name: str
    ok: bool
    seconds: float
    reason: str = ""
