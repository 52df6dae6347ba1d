"""The audit trail's record: one access to patient data (who, when, from where, what, which
operation, outcome), as stored in the index and exported as a DICOM Audit Message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Operation(StrEnum):
    """What was done; each maps to a PS3.15 A.5.3 audit event (docs/security.md)."""

    SEARCH = "search"  # QIDO-RS, C-FIND: Query (110112)
    RETRIEVE = "retrieve"  # WADO-RS instances, metadata, frames, bulk data, rendered: 110103
    STORE = "store"  # STOW-RS, C-STORE, import: DICOM Instances Transferred (110104), create
    SEND = "send"  # C-MOVE / C-GET to a peer: DICOM Instances Transferred (110104), read
    DELETE = "delete"  # DICOM Instances Accessed (110103), delete
    UPDATE = "update"  # attributes corrected after ingest: DICOM Instances Accessed, update
    EXPORT = "export"  # a study leaving the archive in another form: Export (110106)
    LOGIN = "login"  # a principal authenticated (or failed to): User Authentication (110114)
    SECURITY = "security"  # tokens, share links, settings: Security Alert (110113)
    TIER_MOVE = "tier-move"  # blobs moved between storage tiers: Instances Accessed, update
    RECALL = "recall"  # a recall from a tier that needs one: Instances Accessed, execute


@dataclass(frozen=True)
class AuditRecord:
    """One audited event. ``outcome`` is the wire status (HTTP status or DIMSE status),
    ``success`` whether it was one (PS3.15 A.5.3 EventOutcomeIndicator 0, else 4 or 8);
    ``detail`` is e.g. the query of a search, never a secret."""

    at: datetime  # UTC, naive
    actor: str
    actor_kind: str
    source: str
    operation: Operation
    study: str = ""
    series: str = ""
    instance: str = ""
    outcome: int = 0
    success: bool = True
    detail: str = ""
    pk: int | None = None
    # The study's patient (filled in by the archive when it records the event): the Patient
    # participant of PS3.15 A.5.3.4, A.5.3.6 and A.5.3.7.
    patient_id: str = ""
    patient_name: str = ""


@dataclass(frozen=True)
class AuditQuery:
    """Which events `wsiarchive audit` lists: each field narrows, None does not."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    study: str | None = None
    operation: Operation | None = None
    failures_only: bool = False
    limit: int = 1000
