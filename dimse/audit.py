"""The audit trail of the DICOM listener: one AuditRecord per C-STORE, C-FIND, C-MOVE, C-GET
and refused request, built here and handed to ``Archive.audit`` (docs/security.md)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from dimse.statuses import succeeded
from storage import Archive
from storage.audit import AuditRecord, Operation

log = logging.getLogger(__name__)


def _peer(association: Any) -> Any:
    """The other side of an association: its requestor when we accepted it (the listener,
    the storage SCP of a C-MOVE retrieve), its acceptor when we requested it (a C-GET)."""
    return association.acceptor if association.is_requestor else association.requestor


def source_of(association: Any) -> str:
    """``AE@host:port`` of the peer of an association."""
    peer = _peer(association)
    return f"{peer.ae_title}@{peer.address}:{peer.port}"


def audit_record(
    association: Any,
    operation: Operation,
    outcome: int,
    study: str = "",
    series: str = "",
    instance: str = "",
    detail: str = "",
) -> AuditRecord:
    """The record of one DIMSE operation; *outcome* is its (final) DIMSE status."""
    return AuditRecord(
        at=datetime.now(UTC).replace(tzinfo=None),
        actor=str(_peer(association).ae_title).strip(),
        actor_kind="ae",
        source=source_of(association),
        operation=operation,
        study=study,
        series=series,
        instance=instance,
        outcome=outcome,
        success=succeeded(outcome),
        detail=detail,
    )


def audited(archive: Archive, record: AuditRecord) -> None:
    """Record it in the archive's audit trail; a failure to is logged, and the peer still gets
    its answer."""
    try:
        archive.audit(record)
    except Exception:
        log.exception(
            "could not record %s of %s in the audit trail", record.operation, record.actor
        )
