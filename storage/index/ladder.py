"""The one join ladder of the index: patient → study → series → instance, walked up or down
from any level, joining only the rungs a query needs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select

from storage.access import Principal
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


def ladder(query: Q, start: Level, levels: Iterable[Level] = (), who: Principal | None = None) -> Q:
    """*query* selected from the table of *start*, joined to the tables of *levels* and of
    every level between. Where instances take part, only stored ones do (a pending row is an
    ingest in progress, PS3.4 C.4.1.2: never a match). With *who*, only the studies the
    principal may see take part (the study rung is then always joined): the one place the
    per-study access rule meets SQL."""
    wanted = {start, *levels}
    restricted = who is not None and not who.unrestricted
    if restricted:
        wanted.add(Level.STUDY)
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
    if restricted:
        assert who is not None
        query = query.where(*visible(who))
    return query


def visible(who: Principal) -> list[ColumnElement[bool]]:
    """The conditions on the study table that keep the studies *who* may see."""
    conditions: list[ColumnElement[bool]] = []
    if who.groups is not None:
        conditions.append(Study.access_group.in_(sorted(who.groups)))
    if who.studies is not None:
        conditions.append(Study.study_instance_uid.in_(sorted(who.studies)))
    return conditions
