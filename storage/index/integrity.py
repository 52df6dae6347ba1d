"""The index rows `verify` compares with the blob store, and the repairs it may write."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from storage.index.engine import WRITE
from storage.index.models import FrameIndex, Instance, Status


@dataclass(frozen=True)
class BlobRow:
    """One instance row as `verify` sees it."""

    pk: int
    sop_instance_uid: str
    status: str
    blob_key: str | None
    pending_key: str | None
    claimed_at: datetime | None
    size: int
    content_hash: str | None
    frames: bytes | None


def blob_rows(engine: Engine) -> Iterator[BlobRow]:
    """Every instance row with its frame table, stored and pending alike."""
    query = (
        select(
            Instance.pk,
            Instance.sop_instance_uid,
            Instance.status,
            Instance.blob_key,
            Instance.pending_key,
            Instance.claimed_at,
            Instance.size,
            Instance.content_hash,
            FrameIndex.ranges,
        )
        .outerjoin(FrameIndex, FrameIndex.instance_pk == Instance.pk)
        .order_by(Instance.pk)
    )
    with Session(engine) as session:
        for row in session.execute(query):
            yield BlobRow(*row)


def record_hash(engine: Engine, pk: int, content_hash: str) -> None:
    """Record the hash of a blob stored before hashes were recorded."""
    with Session(engine.execution_options(**WRITE)) as session, session.begin():
        session.execute(
            update(Instance)
            .where(Instance.pk == pk, Instance.content_hash.is_(None))
            .values(content_hash=content_hash)
        )


def replace_frames(engine: Engine, pk: int, frames: bytes) -> None:
    """Replace a stored instance's frame table with one rebuilt from its blob."""
    with Session(engine.execution_options(**WRITE)) as session, session.begin():
        row = session.get(FrameIndex, pk)
        if row is None:
            session.add(FrameIndex(instance_pk=pk, ranges=frames))
        else:
            row.ranges = frames


__all__ = ["BlobRow", "Status", "blob_rows", "record_hash", "replace_frames"]
