"""Running a search: one DICOM JSON object per match (index columns, computed counts,
sequence items, and attributes taken from stored documents), or the files it matches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from storage.access import Principal
from storage.dicom.document import JsonObject, load
from storage.dicom.levels import Level
from storage.index.ladder import KEYS, ladder
from storage.index.models import (
    Instance,
    InstanceMetadata,
    RequestAttributes,
    Series,
    Study,
)
from storage.query.keys import (
    BY_PATH,
    DEFAULT_RETURN,
    ITEM_TABLES,
    PARENT_UIDS,
    REGISTRY,
    Attribute,
    Kind,
    by_keyword,
    vr_of,
)
from storage.query.plan import matched, statement
from storage.query.search import Search
from storage.records import InstanceFile

CHUNK = 500  # primary keys per IN (...) list
# Matches counted beyond a page at most, for the paging Warning: a search that matches
# millions stays as fast as its page (the Warning then says "at least").
COUNT_CAP = 10_000
_PIXEL_KEYS = ("7FE00010", "7FE00008", "7FE00009")
# The UIDs that name a result's resource (its RetrieveURL), by level.
UID_COLUMNS: dict[Level, list[Any]] = {
    Level.PATIENT: [],
    Level.STUDY: [Study.study_instance_uid],
    Level.SERIES: [Study.study_instance_uid, Series.series_instance_uid],
    Level.INSTANCE: [
        Study.study_instance_uid,
        Series.series_instance_uid,
        Instance.sop_instance_uid,
    ],
}


@dataclass(frozen=True)
class Match:
    """One result: its attributes as a DICOM JSON object and the UIDs that name it
    (study[, series[, instance]]; none for a patient)."""

    dataset: JsonObject
    uids: tuple[str, ...]


@dataclass(frozen=True)
class Page:
    """The results of a search and how many matches there are beyond them (at least that
    many when *capped*: they were counted up to COUNT_CAP)."""

    results: list[Match]
    remaining: int
    capped: bool = False


def run(engine: Engine, search: Search, who: Principal) -> Page:
    """Execute *search* as *who*: one Match per result it may see, plus the count of those
    left unreturned (counts never include what it may not see)."""
    with engine.connect() as connection:
        remaining, capped = 0, False
        if search.limit is None:
            pks = [row[0] for row in connection.execute(statement(search, None, who))]
        else:
            query = statement(search, search.limit + 1, who)
            pks = [row[0] for row in connection.execute(query)]
            if len(pks) > search.limit:
                pks = pks[: search.limit]
                counted = search.offset + search.limit + COUNT_CAP
                total = int(
                    connection.scalar(
                        select(func.count()).select_from(
                            matched(search, who).limit(counted).subquery()
                        )
                    )
                    or 0
                )
                remaining = max(total - search.offset - search.limit, 0)
                capped = total >= counted
        if not pks:
            return Page([], remaining, capped)
        return Page(_results(connection, search, pks, who), remaining, capped)


def instance_files(engine: Engine, search: Search, who: Principal) -> list[InstanceFile]:
    """For C-MOVE / C-GET: every stored instance *search* (at any level) matches, of the
    studies *who* may see."""
    with engine.connect() as connection:
        pks = [row[0] for row in connection.execute(matched(search, who))]
        columns = select(
            Study.study_instance_uid,
            Series.series_instance_uid,
            Instance.sop_instance_uid,
            Instance.sop_class_uid,
            Instance.transfer_syntax_uid,
            Instance.blob_key,
        )
        query = ladder(columns, Level.INSTANCE, [Level.STUDY, search.level]).order_by(Instance.pk)
        owner = KEYS[search.level]
        found: list[InstanceFile] = []
        for start in range(0, len(pks), CHUNK):
            rows = connection.execute(query.where(owner.in_(pks[start : start + CHUNK])))
            found += [
                InstanceFile(study, series, instance, sop_class, syntax, key or "")
                for study, series, instance, sop_class, syntax, key in rows
            ]
        return found


def _returned(search: Search) -> list[Attribute]:
    keywords = list(DEFAULT_RETURN[search.level]) + PARENT_UIDS.get(search.level, [])
    for level in (Level.STUDY, Level.SERIES):
        if level in search.levels and level != search.level:
            keywords = DEFAULT_RETURN[level] + keywords
    wanted = [by_keyword(k) for k in keywords]
    if search.include_all:
        wanted += [
            a
            for a in REGISTRY
            if a.level == search.level or (search.level == Level.STUDY and a.level == Level.PATIENT)
        ]
    wanted += [f.attribute for f in search.filters] + search.include
    unique: dict[tuple[int, ...], Attribute] = {}
    for attribute in wanted:
        if attribute.level.depth <= search.level.depth:
            unique.setdefault(attribute.path, attribute)
    return list(unique.values())


def _results(
    connection: Connection, search: Search, pks: Sequence[int], who: Principal
) -> list[Match]:
    attributes = _returned(search)
    plain = [a for a in attributes if a.kind not in (Kind.COMPUTED, Kind.ITEM)]
    uid_columns = UID_COLUMNS[search.level]
    key = KEYS[search.level]
    query = ladder(
        select(key, *[a.column for a in plain], *uid_columns), search.level, [Level.PATIENT]
    )
    rows = {row[0]: row for row in connection.execute(query.where(key.in_(pks)))}
    computed = _computed(connection, search.level, pks, {a.keyword for a in attributes}, who)
    items = _items(connection, search.level, pks, [a for a in attributes if a.kind == Kind.ITEM])
    results: list[tuple[int, Match]] = []
    for pk in pks:
        row = rows.get(pk)
        if row is None:
            continue
        dataset: JsonObject = {}
        for position, attribute in enumerate(plain, start=1):
            dataset[attribute.key] = json_value(attribute.vr, row[position])
        for keyword, by_pk in computed.items():
            attribute = by_keyword(keyword)
            dataset[attribute.key] = json_value(attribute.vr, by_pk.get(pk))
        for sequence_key, item_lists in items.items():
            found = item_lists.get(pk)
            dataset[sequence_key] = {"vr": "SQ", "Value": found} if found else {"vr": "SQ"}
        start = len(plain) + 1
        results.append((pk, Match(dataset, tuple(row[start : start + len(uid_columns)]))))
    if search.include_other or (search.include_all and search.level == Level.INSTANCE):
        _add_from_documents(connection, search, results)
    return [match for _, match in results]


def _add_from_documents(
    connection: Connection, search: Search, results: list[tuple[int, Match]]
) -> None:
    """includefield of attributes the index does not keep: taken from the stored document of
    the instance (or, for a study or series, of its first instance). A sequence path returns
    the whole top-level sequence. Missing attributes come back empty (zero length)."""
    if search.level == Level.PATIENT:
        return
    pks = [pk for pk, _ in results]
    if search.level == Level.INSTANCE:
        representative = {pk: pk for pk in pks}
    else:
        owner = KEYS[search.level]
        query = ladder(select(owner, func.min(Instance.pk)), search.level, [Level.INSTANCE])
        representative = {
            pk: first
            for pk, first in connection.execute(query.where(owner.in_(pks)).group_by(owner))
        }
    documents = {
        pk: load(document)
        for pk, document in connection.execute(
            select(InstanceMetadata.instance_pk, InstanceMetadata.document).where(
                InstanceMetadata.instance_pk.in_(list(representative.values()))
            )
        )
    }
    wanted = {path[0] for path in search.include_other}
    for pk, match in results:
        document = documents.get(representative.get(pk, -1), {})
        dataset = match.dataset
        if search.include_all and search.level == Level.INSTANCE:
            for key, element in document.items():
                if key not in dataset and key not in _PIXEL_KEYS:
                    dataset[key] = element
        for tag in wanted:
            key = f"{tag:08X}"
            if key not in dataset:
                dataset[key] = document.get(key) or {"vr": vr_of(tag)}


def _computed(
    connection: Connection, level: Level, pks: Sequence[int], keywords: set[str], who: Principal
) -> dict[str, dict[int, Any]]:
    """Counts (and ModalitiesInStudy) of the results, by keyword and primary key; a
    patient's counts only of the studies *who* may see (access is per study, so a study's
    own counts are whole)."""
    out: dict[str, dict[int, Any]] = {}
    if level == Level.PATIENT:
        # The counters of the studies it may see, added up (storage.index.counts).
        query = ladder(
            select(
                Study.patient_pk,
                func.count(Study.pk),
                func.sum(Study.number_of_series),
                func.sum(Study.number_of_instances),
            ),
            Level.STUDY,
            [],
            who,
        )
        counts = connection.execute(
            query.where(Study.patient_pk.in_(pks)).group_by(Study.patient_pk)
        ).all()
        out["NumberOfPatientRelatedStudies"] = {pk: a for pk, a, _, _ in counts}
        out["NumberOfPatientRelatedSeries"] = {pk: b for pk, _, b, _ in counts}
        out["NumberOfPatientRelatedInstances"] = {pk: c for pk, _, _, c in counts}
    elif level == Level.STUDY:
        if "ModalitiesInStudy" in keywords:
            # From the series of the page's studies (ix_series_study_pk): a page is small.
            modalities: dict[int, list[str]] = {}
            for study_pk, modality in connection.execute(
                select(Series.study_pk, Series.modality)
                .where(Series.study_pk.in_(pks))
                .group_by(Series.study_pk, Series.modality)
                .order_by(Series.modality)
            ):
                if modality:
                    modalities.setdefault(study_pk, []).append(modality)
            out["ModalitiesInStudy"] = modalities
        study_counts = connection.execute(
            select(Study.pk, Study.number_of_series, Study.number_of_instances).where(
                Study.pk.in_(pks)
            )
        ).all()
        out["NumberOfStudyRelatedSeries"] = {pk: s for pk, s, _ in study_counts}
        out["NumberOfStudyRelatedInstances"] = {pk: i for pk, _, i in study_counts}
    elif level == Level.SERIES and "NumberOfSeriesRelatedInstances" in keywords:
        out["NumberOfSeriesRelatedInstances"] = {
            pk: count
            for pk, count in connection.execute(
                select(Series.pk, Series.number_of_instances).where(Series.pk.in_(pks))
            )
        }
    return {k: v for k, v in out.items() if k in keywords}


def _items(
    connection: Connection, level: Level, pks: Sequence[int], attributes: list[Attribute]
) -> dict[str, dict[int, list[JsonObject]]]:
    """Sequence attributes to return: for each result, the items with the requested keys.
    Items are kept at their owner's level; a result above that level returns none."""
    out: dict[str, dict[int, list[JsonObject]]] = {}
    by_sequence: dict[int, list[Attribute]] = {}
    for attribute in attributes:
        by_sequence.setdefault(attribute.path[0], []).append(attribute)
    for sequence, members in by_sequence.items():
        items = ITEM_TABLES[sequence]
        columns = [a.column for a in members]
        if level.depth < items.owner_level.depth:
            continue
        if level == Level.INSTANCE and items.table is RequestAttributes:
            query = (
                select(Instance.pk, *columns)
                .join(RequestAttributes, RequestAttributes.series_pk == Instance.series_pk)
                .where(Instance.pk.in_(pks))
            )
        else:
            query = select(items.foreign, *columns).where(items.foreign.in_(pks))
        found: dict[int, list[JsonObject]] = {}
        for row in connection.execute(query):
            item = {
                f"{a.tag:08X}": json_value(a.vr, value)
                for a, value in zip(members, row[1:], strict=True)
            }
            found.setdefault(row[0], []).append(item)
        out[f"{sequence:08X}"] = found
    return out


def json_value(vr: str, value: object) -> JsonObject:
    """A DICOM JSON attribute object for an index value (empty values have no "Value")."""
    if value is None or value == "" or value == []:
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": value}]}
    if isinstance(value, list):
        return {"vr": vr, "Value": value}
    if vr in ("IS", "US", "UL", "SS", "SL"):
        return {"vr": vr, "Value": [int(str(value))]}
    return {"vr": vr, "Value": [value]}


__all__ = ["BY_PATH", "Match", "Page", "instance_files", "json_value", "run"]
