"""The index's part in storage tiers: what the rules look at, the commit of a move, asked-for
recalls, each study's last read, and the bytes per tier."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, update

from storage.index.engine import WRITE
from storage.index.models import Instance, Series, Status, Study


@dataclass(frozen=True)
class Placed:
    """A stored instance as the tier rules and moves see it."""

    pk: int
    study: str
    series: str
    instance: str
    blob_key: str
    tier: str  # "" is the first tier
    size: int
    content_hash: str | None
    modality: str
    study_date: str  # YYYYMMDD or ""
    acquired: str  # the instance's AcquisitionDateTime, normalised (YYYYMMDDHHMMSS...) or ""
    stored_at: datetime | None
    last_accessed_at: datetime | None
    recall_requested_at: datetime | None


@dataclass(frozen=True)
class Usage:
    """How much one tier holds."""

    tier: str  # "" is the first tier
    instances: int
    bytes: int


class TierIndex:
    """Every read and write of the index that storage tiers make."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**WRITE)

    def placed(self, study: str | None = None, recalls_only: bool = False) -> Iterator[Placed]:
        """Stored instances not being written (of *study*; only those with a recall asked)."""
        query = (
            select(
                Instance.pk,
                Study.study_instance_uid,
                Series.series_instance_uid,
                Instance.sop_instance_uid,
                Instance.blob_key,
                Instance.tier,
                Instance.size,
                Instance.content_hash,
                Series.modality,
                Study.study_date,
                Instance.acquisition_datetime_norm,
                Instance.stored_at,
                Study.last_accessed_at,
                Instance.recall_requested_at,
            )
            .join(Series, Instance.series_pk == Series.pk)
            .join(Study, Series.study_pk == Study.pk)
            .where(Instance.status == Status.STORED, Instance.pending_key.is_(None))
            .where(Instance.blob_key.is_not(None))
            .order_by(Study.pk, Series.pk, Instance.pk)
        )
        if study is not None:
            query = query.where(Study.study_instance_uid == study)
        if recalls_only:
            query = query.where(Instance.recall_requested_at.is_not(None))
        with self.engine.connect() as connection:
            for row in connection.execute(query):
                yield Placed(*tuple(row))

    def commit_move(self, pk: int, old_key: str, new_key: str, tier: str) -> bool:
        """Name the blob's new copy, unless the row changed since it was read (stored
        again, being written): compare-and-set on the old key. Clears an asked-for recall."""
        statement = (
            update(Instance)
            .where(Instance.pk == pk, Instance.blob_key == old_key)
            .where(Instance.pending_key.is_(None))
            .values(blob_key=new_key, tier=tier, recall_requested_at=None)
        )
        with self._writer.begin() as connection:
            return connection.execute(statement).rowcount == 1

    def ask_recall(self, blob_key: str, at: datetime) -> datetime | None:
        """Record that the blob is wanted back (once); when it was first asked for, None when
        no stored instance has this blob."""
        with self._writer.begin() as connection:
            connection.execute(
                update(Instance)
                .where(Instance.blob_key == blob_key, Instance.recall_requested_at.is_(None))
                .values(recall_requested_at=at)
            )
            found = connection.execute(
                select(Instance.recall_requested_at).where(Instance.blob_key == blob_key)
            ).first()
        return found[0] if found else None

    def touch(self, study: str, at: datetime) -> None:
        """Record that the study was read at *at*."""
        with self._writer.begin() as connection:
            connection.execute(
                update(Study).where(Study.study_instance_uid == study).values(last_accessed_at=at)
            )

    def usage(self) -> list[Usage]:
        """Instances and bytes per tier."""
        query = (
            select(Instance.tier, func.count(), func.coalesce(func.sum(Instance.size), 0))
            .where(Instance.status == Status.STORED)
            .group_by(Instance.tier)
        )
        with self.engine.connect() as connection:
            return [Usage(tier, int(n), int(size)) for tier, n, size in connection.execute(query)]
