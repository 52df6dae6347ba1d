"""The counters of studies and series (NumberOfStudyRelatedSeries / -Instances,
NumberOfSeriesRelatedInstances), kept by the index writer in the transaction that changes
what they count, so a search reads them instead of counting.

Additions are gathered and applied at the end of a transaction (``Counts``); a removal is
applied at once (``instance_left``, ``series_left``), because the value it leaves decides
whether the series or study goes: under the row lock of its UPDATE, the last of several
concurrent removals sees 0 (an EXISTS query would not see the others' uncommitted deletes,
and none would remove the emptied series)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import update
from sqlalchemy.orm import Session

from storage.index.models import Series, Study


@dataclass
class Counts:
    """Changes to the counters of one transaction, applied together by ``apply``.

    Each change is ``n = n + delta`` in SQL (never read-modify-write), so concurrent writers
    on PostgreSQL add up under the row lock; rows are updated in primary-key order (series,
    then studies), so two transactions never wait for each other in a cycle."""

    series_instances: Counter[int] = field(default_factory=Counter)
    study_instances: Counter[int] = field(default_factory=Counter)
    study_series: Counter[int] = field(default_factory=Counter)

    def instance(self, series_pk: int, study_pk: int, delta: int = 1) -> None:
        """A stored instance joined a series of a study."""
        self.series_instances[series_pk] += delta
        self.study_instances[study_pk] += delta

    def series(self, study_pk: int, delta: int = 1) -> None:
        """A series was made in a study."""
        self.study_series[study_pk] += delta

    def apply(self, session: Session) -> None:
        """Write the changes (a deleted row's are dropped: nothing is left to count)."""
        for pk in sorted(self.series_instances):
            if delta := self.series_instances[pk]:
                session.execute(
                    update(Series)
                    .where(Series.pk == pk)
                    .values(number_of_instances=Series.number_of_instances + delta)
                    .execution_options(synchronize_session=False)
                )
        for pk in sorted(self.study_instances.keys() | self.study_series.keys()):
            instances, series = self.study_instances[pk], self.study_series[pk]
            if instances or series:
                session.execute(
                    update(Study)
                    .where(Study.pk == pk)
                    .values(
                        number_of_instances=Study.number_of_instances + instances,
                        number_of_series=Study.number_of_series + series,
                    )
                    .execution_options(synchronize_session=False)
                )
        self.series_instances.clear()
        self.study_instances.clear()
        self.study_series.clear()


def instance_left(session: Session, series_pk: int) -> tuple[int, int] | None:
    """One stored instance fewer in *series_pk* and its study, now: (its study, the
    instances left in the series), or None when the series is gone."""
    row = session.execute(
        update(Series)
        .where(Series.pk == series_pk)
        .values(number_of_instances=Series.number_of_instances - 1)
        .returning(Series.study_pk, Series.number_of_instances)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return None
    study_pk, left = row
    session.execute(
        update(Study)
        .where(Study.pk == study_pk)
        .values(number_of_instances=Study.number_of_instances - 1)
        .execution_options(synchronize_session=False)
    )
    return int(study_pk), int(left)


def series_left(session: Session, study_pk: int) -> int | None:
    """One series fewer in *study_pk*, now: the series left in it (None: study gone)."""
    left = session.execute(
        update(Study)
        .where(Study.pk == study_pk)
        .values(number_of_series=Study.number_of_series - 1)
        .returning(Study.number_of_series)
        .execution_options(synchronize_session=False)
    ).scalar()
    return None if left is None else int(left)
