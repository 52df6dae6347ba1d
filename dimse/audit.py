"""The audit trail of the DICOM listener: one AuditRecord per C-STORE, C-FIND, C-MOVE, C-GET
and refused request, built here and nowhere else (docs/security.md).

``Archive.audit`` (which stores the record) is being added to the core: ``audited`` hands
the record to it once it exists, and until then only logs it (at debug level).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from dimse.statuses import succeeded
from storage.audit import AuditRecord, Operation

log = logging.getLogger(__name__)


def source_of(association: Any) -> str:
    """``AE@host:port`` of the peer of an association."""
    requestor = association.requestor
    return f"{requestor.ae_title}@{requestor.address}:{requestor.port}"


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
        actor=str(association.requestor.ae_title).strip(),
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


def audited(archive: Any, record: AuditRecord) -> None:
    """Hand the record to the archive's audit trail (the hook: see the module's docstring)."""
    log.debug("audit: %s", record)
    store = getattr(archive, "audit", None)
    if store is not None:
        store(record)
