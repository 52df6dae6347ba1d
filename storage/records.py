"""The records the core hands to its front doors: what is stored, and what an ingest did."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


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


class ForwardState(StrEnum):
    """Where an instance is on its way to one forwarding destination."""

    PENDING = "pending"  # waiting to be sent (again, after a failure, at its retry time)
    SENT = "sent"  # the destination accepted it: never sent again unless asked for
    FAILED = "failed"  # every attempt failed; `wsiarchive send` queues it again


@dataclass(frozen=True)
class ForwardItem:
    """One instance queued for one forwarding destination."""

    pk: int
    destination: str
    study: str
    series: str
    instance: str
    state: ForwardState
    attempts: int
    reason: str
    retry_at: datetime | None


@dataclass(frozen=True)
class ForwardCount:
    """How many instances of a destination are in each state, and its last failure."""

    destination: str
    pending: int = 0
    sent: int = 0
    failed: int = 0
    attempts: int = 0  # of every row: sends tried, successful or not
    last_reason: str = ""


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


class Action(StrEnum):
    """What a change feed event did to an instance (Azure's DICOM service's names)."""

    CREATE = "create"  # stored for the first time (or again after a delete)
    UPDATE = "update"  # stored again under duplicate_policy = overwrite
    DELETE = "delete"


class State(StrEnum):
    """What has become of the instance of a change feed event since (Azure's names)."""

    CURRENT = "current"  # this event made the version stored now
    REPLACED = "replaced"  # a later create or update replaced it
    DELETED = "deleted"  # the instance was deleted since


@dataclass(frozen=True)
class Change:
    """One event of the change feed."""

    sequence: int
    at: datetime  # UTC, naive
    action: Action
    state: State
    study: str
    series: str
    instance: str


@dataclass(frozen=True)
class FeedWindow:
    """Which events a change feed read returns: those at or after *start* and before *end*
    (UTC), in sequence order, *offset* of them skipped, at most *limit*."""

    start: datetime | None = None
    end: datetime | None = None
    offset: int = 0
    limit: int = 100


@dataclass(frozen=True)
class Check:
    """The outcome of one readiness check: what was checked, whether it passed, how long it
    took, and a short reason when it did not (never a host name or a path)."""

    name: str
    ok: bool
    seconds: float
    reason: str = ""


@dataclass(frozen=True)
class Pseudonym:
    """One entry of an export project's pseudonym map: what *original* (of *kind*:
    PatientID, PatientName, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID) became."""

    project: str
    kind: str
    original: str
    pseudonym: str
    created_at: datetime | None = None
