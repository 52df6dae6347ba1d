"""The forwarding outbox in the index: one row per instance and destination, queued once,
taken in queue order, marked sent or failed in one statement each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from storage.index.engine import WRITE
from storage.index.models import ForwardItem as Row
from storage.index.models import Instance, Status
from storage.records import ForwardCount, ForwardItem, ForwardState

REASON_LENGTH = 1000  # characters of a failure's reason kept (the column's length)
Uids = tuple[str, str, str]  # study, series, instance


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _item(row: Row) -> ForwardItem:
    return ForwardItem(
        row.pk,
        row.destination,
        row.study_instance_uid,
        row.series_instance_uid,
        row.sop_instance_uid,
        ForwardState(row.state),
        row.attempts,
        row.reason,
        row.retry_at,
    )


def enqueue(engine: Engine, destination: str, items: Sequence[Uids], again: bool) -> int:
    """Queue *items* for *destination*; the number queued. An instance queued before keeps
    its row: left as it is, or with *again* (a send asked for) made pending anew."""
    queued = 0
    now = _now()
    with Session(engine.execution_options(**WRITE)) as session, session.begin():
        for start in range(0, len(items), 500):
            chunk = items[start : start + 500]
            existing = {
                row.sop_instance_uid: row
                for row in session.scalars(
                    select(Row).where(
                        Row.destination == destination,
                        Row.sop_instance_uid.in_([uids[2] for uids in chunk]),
                    )
                )
            }
            for study, series, instance in chunk:
                row = existing.get(instance)
                if row is not None and not (again and row.state != ForwardState.PENDING):
                    continue
                if row is not None:  # sent again: a new row, after those queued before it
                    session.delete(row)
                    session.flush()
                existing[instance] = Row(
                    destination=destination,
                    study_instance_uid=study,
                    series_instance_uid=series,
                    sop_instance_uid=instance,
                    state=ForwardState.PENDING,
                    attempts=0,
                    reason="",
                    queued_at=now,
                )
                session.add(existing[instance])
                queued += 1
    return queued


def due(engine: Engine, destination: str, limit: int) -> list[ForwardItem]:
    """The next pending rows of *destination*, oldest first; none while the oldest waits
    for its retry time (a destination's instances go in queue order)."""
    with Session(engine) as session:
        rows = session.scalars(
            select(Row)
            .where(Row.destination == destination, Row.state == ForwardState.PENDING)
            .order_by(Row.pk)
            .limit(limit)
        ).all()
        if rows and rows[0].retry_at is not None and rows[0].retry_at > _now():
            return []
        return [_item(row) for row in rows]


def sent(engine: Engine, pk: int) -> bool:
    """Mark row *pk* sent (if it is still pending): the one step that records a success."""
    with Session(engine.execution_options(**WRITE)) as session, session.begin():
        done = session.execute(
            update(Row)
            .where(Row.pk == pk, Row.state == ForwardState.PENDING)
            .values(
                state=ForwardState.SENT,
                attempts=Row.attempts + 1,
                reason="",
                sent_at=_now(),
                retry_at=None,
            )
        )
        return bool(getattr(done, "rowcount", 0))


def failed(engine: Engine, pk: int, reason: str, retry_at: datetime | None) -> None:
    """Record a failed attempt of row *pk*: pending until *retry_at*, or failed for good."""
    state = ForwardState.PENDING if retry_at is not None else ForwardState.FAILED
    with Session(engine.execution_options(**WRITE)) as session, session.begin():
        session.execute(
            update(Row)
            .where(Row.pk == pk, Row.state == ForwardState.PENDING)
            .values(
                state=state,
                attempts=Row.attempts + 1,
                reason=reason[:REASON_LENGTH],
                retry_at=retry_at,
            )
        )


def counts(engine: Engine) -> list[ForwardCount]:
    """Per destination: rows in each state, attempts, and the last failure's reason."""
    with Session(engine) as session:
        totals: dict[str, dict[str, int]] = {}
        for destination, state, number, attempts in session.execute(
            select(Row.destination, Row.state, func.count(), func.sum(Row.attempts)).group_by(
                Row.destination, Row.state
            )
        ):
            entry = totals.setdefault(destination, {"attempts": 0})
            entry[state] = number
            entry["attempts"] += int(attempts or 0)
        found = []
        for destination, entry in sorted(totals.items()):
            reason = session.scalar(
                select(Row.reason)
                .where(Row.destination == destination, Row.reason != "")
                .order_by(Row.pk.desc())
                .limit(1)
            )
            found.append(
                ForwardCount(
                    destination,
                    pending=entry.get(ForwardState.PENDING, 0),
                    sent=entry.get(ForwardState.SENT, 0),
                    failed=entry.get(ForwardState.FAILED, 0),
                    attempts=entry["attempts"],
                    last_reason=reason or "",
                )
            )
        return found


def items(engine: Engine, destination: str, state: ForwardState, limit: int) -> list[ForwardItem]:
    """Rows of *destination* in *state*, oldest first (the failures `forward --status` lists)."""
    with Session(engine) as session:
        rows = session.scalars(
            select(Row)
            .where(Row.destination == destination, Row.state == state)
            .order_by(Row.pk)
            .limit(limit)
        ).all()
        return [_item(row) for row in rows]


def stored_by(engine: Engine, sop_instance_uids: Sequence[str]) -> dict[str, str]:
    """The calling AE title that stored each of *sop_instance_uids* ("" for other doors)."""
    uids = sorted(set(sop_instance_uids))
    found: dict[str, str] = {}
    with Session(engine) as session:
        for start in range(0, len(uids), 500):
            query = select(Instance.sop_instance_uid, Instance.stored_by).where(
                Instance.status == Status.STORED,
                Instance.sop_instance_uid.in_(uids[start : start + 500]),
            )
            found.update({uid: source for uid, source in session.execute(query)})
    return found
