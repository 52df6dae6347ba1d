"""The one join ladder of the index: patient → study → series → instance, walked up or down
from any level, joining only the rungs a query needs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select

from storage.dicom.levels import Level
from storage.index.models import Base, Instance, Patient, Series, Status, Study

TABLES: dict[Level, type[Base]] = {
    Level.PATIENT: Patient,
    Level.STUDY: Study,
    Level.SERIES: Series,
    Level.INSTANCE: Instance,
}
KEYS: dict[Level, Any] = {
    Level.PATIENT: Patient.pk,
    Level.STUDY: Study.pk,
    Level.SERIES: Series.pk,
    Level.INSTANCE: Instance.pk,
}
# The condition that links each level to the one above it.
_LINKS: dict[Level, ColumnElement[bool]] = {
    Level.STUDY: Study.patient_pk == Patient.pk,
    Level.SERIES: Series.study_pk == Study.pk,
    Level.INSTANCE: Instance.series_pk == Series.pk,
}
STORED_ONLY = Instance.status == Status.STORED
AnySelect = Select[*tuple[Any, ...]]
Q = TypeVar("Q", bound=AnySelect)


def ladder(query: Q, start: Level, levels: Iterable[Level] = ()) -> Q:
    """*query* selected from the table of *start*, joined to the tables of *levels* and of
    every level between. Where instances take part, only stored ones do (a pending row is an
    ingest in progress, PS3.4 C.4.1.2: never a match)."""
    wanted = {start, *levels}
    top = min(level.depth for level in wanted)
    bottom = max(level.depth for level in wanted)
    query = query.select_from(TABLES[start])
    order = list(Level)
    for depth in range(start.depth - 1, top - 1, -1):  # upwards
        query = query.join(TABLES[order[depth]], _LINKS[order[depth + 1]])
    for depth in range(start.depth + 1, bottom + 1):  # downwards
        query = query.join(TABLES[order[depth]], _LINKS[order[depth]])
    if bottom == Level.INSTANCE.depth:
        query = query.where(STORED_ONLY)
    return query
