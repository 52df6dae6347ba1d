"""The audit trail in the index: events appended, searched, and handed to the exporter."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session

from storage.audit import AuditQuery, AuditRecord, Operation
from storage.index.engine import WRITE
from storage.index.models import AuditEvent, Patient, Study

DETAIL_LENGTH = 2000  # AuditEvent.detail


def _record(row: AuditEvent) -> AuditRecord:
    return AuditRecord(
        row.at,
        row.actor,
        row.actor_kind,
        row.source,
        Operation(row.operation),
        row.study_instance_uid,
        row.series_instance_uid,
        row.sop_instance_uid,
        row.outcome,
        row.success,
        row.detail,
        row.pk,
        row.patient_id,
        row.patient_name,
    )


def patients(engine: Engine, studies: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Patient ID and name by Study Instance UID."""
    wanted = sorted(set(studies) - {""})
    if not wanted:
        return {}
    query = (
        select(Study.study_instance_uid, Patient.patient_id, Patient.patient_name)
        .join(Patient, Study.patient_pk == Patient.pk)
        .where(Study.study_instance_uid.in_(wanted))
    )
    with engine.connect() as connection:
        return {study: (pid, name) for study, pid, name in connection.execute(query)}


class AuditStore:
    """The audit_event table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, records: Iterable[AuditRecord]) -> None:
        """Append events (one transaction, committed before returning)."""
        rows = [
            {
                "at": record.at,
                "actor": record.actor[:256],
                "actor_kind": record.actor_kind[:16],
                "source": record.source[:256],
                "operation": record.operation.value,
                "study_instance_uid": record.study,
                "series_instance_uid": record.series,
                "sop_instance_uid": record.instance,
                "outcome": record.outcome,
                "success": record.success,
                "detail": record.detail[:DETAIL_LENGTH],
                "patient_id": record.patient_id[:64],
                "patient_name": record.patient_name[:400],
            }
            for record in records
        ]
        if rows:
            with self.engine.execution_options(**WRITE).begin() as connection:
                connection.execute(insert(AuditEvent), rows)

    def search(self, query: AuditQuery) -> list[AuditRecord]:
        """Events matching *query*, oldest first."""
        statement = select(AuditEvent)
        if query.since is not None:
            statement = statement.where(AuditEvent.at >= query.since)
        if query.until is not None:
            statement = statement.where(AuditEvent.at < query.until)
        if query.actor is not None:
            statement = statement.where(AuditEvent.actor == query.actor)
        if query.study is not None:
            statement = statement.where(AuditEvent.study_instance_uid == query.study)
        if query.operation is not None:
            statement = statement.where(AuditEvent.operation == query.operation.value)
        if query.failures_only:
            statement = statement.where(AuditEvent.success.is_(False))
        statement = statement.order_by(AuditEvent.pk).limit(query.limit)
        with Session(self.engine) as session:
            return [_record(row) for row in session.scalars(statement)]

    def unexported(self, limit: int) -> list[AuditRecord]:
        """The oldest events not yet sent as DICOM Audit Messages."""
        statement = (
            select(AuditEvent)
            .where(AuditEvent.exported_at.is_(None))
            .order_by(AuditEvent.pk)
            .limit(limit)
        )
        with Session(self.engine) as session:
            return [_record(row) for row in session.scalars(statement)]

    def mark_exported(self, pks: Sequence[int]) -> None:
        if not pks:
            return
        now = datetime.now(UTC).replace(tzinfo=None)
        with self.engine.execution_options(**WRITE).begin() as connection:
            connection.execute(
                update(AuditEvent).where(AuditEvent.pk.in_(list(pks))).values(exported_at=now)
            )
