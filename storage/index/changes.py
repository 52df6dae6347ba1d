"""The change feed in the index: events written inside the transaction of each change, in
commit order; windows of them read back; the cursors of the processes that deliver them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.index.engine import WRITE
from storage.index.models import (
    ChangeCounter,
    ChangeCursor,
    ChangeEvent,
    Instance,
    InstanceMetadata,
    Status,
)
from storage.records import Action, Change, FeedWindow, State

COUNTER = 1  # the pk of the one change_counter row


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Event:
    """A change being committed: what was done to which instance of which study's group."""

    action: Action
    study: str
    series: str
    instance: str
    access_group: str = ""


def record(session: Session, events: Sequence[Event]) -> None:
    """Write *events* in the caller's transaction; call it last, just before the commit.

    Ordering. A sequence from a database sequence (or autoincrement) is taken when the row is
    inserted, and on PostgreSQL two writers' transactions can commit in the other order: a
    follower that read up to N could then miss N-1, committed a moment later. Here every
    writer takes the row lock of the one change_counter row (SELECT ... FOR UPDATE; on
    SQLite the write lock BEGIN IMMEDIATE took already) as the last statement of its
    transaction and holds it until its commit. The next writer reads the counter only after
    that commit, so sequences are handed out in commit order, without gaps (a rolled back
    transaction rolls its increment back), and PostgreSQL makes a commit visible before it
    releases the commit's locks: a follower that sees N sees everything below N. The cost
    is that commits queue for the lock for the time of one commit each, which the study
    index's writes do anyway on SQLite. Timestamps are taken under the same lock and never
    decrease (a clock stepped back repeats the last one), so a time window is also a range
    of sequences.
    """
    if not events:
        return
    for event in events:  # the states of earlier events of the instance (Azure's "State")
        earlier = update(ChangeEvent).where(ChangeEvent.sop_instance_uid == event.instance)
        if event.action is Action.DELETE:
            session.execute(
                earlier.where(ChangeEvent.state != State.DELETED).values(state=State.DELETED)
            )
        else:
            session.execute(
                earlier.where(ChangeEvent.state == State.CURRENT).values(state=State.REPLACED)
            )
    last, last_at = session.execute(
        select(ChangeCounter.sequence, ChangeCounter.at)
        .where(ChangeCounter.pk == COUNTER)
        .with_for_update()
    ).one()
    at = max(_now(), last_at) if last_at is not None else _now()
    rows = [
        {
            "sequence": last + number,
            "at": at,
            "action": event.action,
            "state": State.DELETED if event.action is Action.DELETE else State.CURRENT,
            "study_instance_uid": event.study,
            "series_instance_uid": event.series,
            "sop_instance_uid": event.instance,
            "access_group": event.access_group,
        }
        for number, event in enumerate(events, start=1)
    ]
    # Several events of one instance in one transaction: only its last is current.
    final = {row["sop_instance_uid"]: row["sequence"] for row in rows}
    for row in rows:
        if row["state"] == State.CURRENT and final[row["sop_instance_uid"]] != row["sequence"]:
            row["state"] = State.REPLACED
    session.execute(insert(ChangeEvent), rows)
    session.execute(
        update(ChangeCounter)
        .where(ChangeCounter.pk == COUNTER)
        .values(sequence=last + len(events), at=at)
    )


def _change(row: ChangeEvent) -> Change:
    return Change(
        row.sequence,
        row.at,
        Action(row.action),
        State(row.state),
        row.study_instance_uid,
        row.series_instance_uid,
        row.sop_instance_uid,
    )


def window(engine: Engine, feed: FeedWindow) -> list[Change]:
    """The events of *feed*, in sequence order. Sequences have no gaps and timestamps never
    decrease with them, so the window is a range of sequences: skipping *offset* of them is
    a range condition on the primary key, not a scan of what is skipped."""
    with Session(engine) as session:
        first = 1
        if feed.start is not None:
            found = session.scalar(
                select(ChangeEvent.sequence)
                .where(ChangeEvent.at >= feed.start)
                .order_by(ChangeEvent.sequence)
                .limit(1)
            )
            if found is None:
                return []
            first = found
        query = select(ChangeEvent).where(ChangeEvent.sequence >= first + feed.offset)
        if feed.end is not None:
            query = query.where(ChangeEvent.at < feed.end)
        rows = session.scalars(query.order_by(ChangeEvent.sequence).limit(feed.limit)).all()
        return [_change(row) for row in rows]


def latest(engine: Engine) -> Change | None:
    """The last event committed, if any."""
    with Session(engine) as session:
        row = session.scalar(select(ChangeEvent).order_by(ChangeEvent.sequence.desc()).limit(1))
        return _change(row) if row is not None else None


def current_documents(engine: Engine, sop_instance_uids: Iterable[str]) -> dict[str, bytes]:
    """The metadata document stored now for each of *sop_instance_uids* that is stored."""
    uids = sorted(set(sop_instance_uids))
    found: dict[str, bytes] = {}
    with Session(engine) as session:
        for start in range(0, len(uids), 500):
            query = (
                select(Instance.sop_instance_uid, InstanceMetadata.document)
                .join(InstanceMetadata, InstanceMetadata.instance_pk == Instance.pk)
                .where(
                    Instance.status == Status.STORED,
                    Instance.sop_instance_uid.in_(uids[start : start + 500]),
                )
            )
            found.update({uid: document for uid, document in session.execute(query)})
    return found


def lease(engine: Engine, name: str, holder: str, seconds: float) -> int | None:
    """Take or renew the lease of cursor *name* for *holder*: the sequence delivered so far,
    or None while another holder's lease lasts. A new cursor starts at the latest event
    (a consumer added now gets what happens from now on). The row is locked with SKIP
    LOCKED on PostgreSQL, so processes competing for it never wait on each other."""
    now = _now()
    try:
        with Session(engine.execution_options(**WRITE)) as session, session.begin():
            row = session.scalar(
                select(ChangeCursor)
                .where(ChangeCursor.name == name)
                .with_for_update(skip_locked=True)
            )
            if row is None:
                if session.scalar(select(ChangeCursor.pk).where(ChangeCursor.name == name)):
                    return None  # locked by another process right now
                start = session.scalar(
                    select(ChangeCounter.sequence).where(ChangeCounter.pk == COUNTER)
                )
                row = ChangeCursor(name=name, sequence=start or 0, holder=holder)
                session.add(row)
            elif row.holder != holder and row.lease_until is not None and row.lease_until > now:
                return None
            row.holder, row.lease_until = holder, now + timedelta(seconds=seconds)
            session.flush()
            return row.sequence
    except IntegrityError:
        return None  # another process created the cursor at the same moment


def advance(engine: Engine, name: str, holder: str, sequence: int) -> bool:
    """Record that cursor *name* has delivered up to *sequence*, if *holder* still holds it."""
    with Session(engine.execution_options(**WRITE)) as session, session.begin():
        done = session.execute(
            update(ChangeCursor)
            .where(ChangeCursor.name == name, ChangeCursor.holder == holder)
            .values(sequence=sequence)
        )
        return bool(getattr(done, "rowcount", 0))
