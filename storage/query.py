"""Search over the study index (QIDO-RS, C-FIND): the attribute registry and the PS3.4
C.2.2.2 matching rules.

Each matching type is one small function that extends a SQLAlchemy query (after pynetdicom's
qrscp): single value, UID list, wildcard, range, universal, sequence, fuzzy person name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    and_,
    distinct,
    exists,
    func,
    or_,
    select,
    true,
)

from storage.errors import InvalidRequest
from storage.metadata import load
from storage.models import (
    STORED,
    Instance,
    InstanceMetadata,
    Patient,
    RequestAttributes,
    Series,
    Specimen,
    Study,
)
from storage.searchvalues import (
    fold,
    name_words,
    normalize_date,
    normalize_datetime,
    normalize_time,
    strip_accents,
)
from storage.uid import is_valid_uid

PATIENT, STUDY, SERIES, INSTANCE = "patient", "study", "series", "instance"
LEVEL_ORDER = {PATIENT: 0, STUDY: 1, SERIES: 2, INSTANCE: 3}

# Kinds of attribute, each with its own matching rules.
UID, TEXT, PN, DATE, TIME, DATETIME, NUMBER, COMPUTED, ITEM = (
    "uid",
    "text",
    "pn",
    "date",
    "time",
    "datetime",
    "number",
    "computed",
    "item",
)


@dataclass(frozen=True)
class Attribute:
    """A searchable and returnable attribute: where the index keeps it and how it matches.

    ``path`` is the tag path from the top level; it has two tags for an attribute inside a
    sequence item (sequence matching, PS3.4 C.2.2.2.6).
    """

    path: tuple[int, ...]
    level: str
    kind: str
    column: object | None = None  # the value as returned
    folded: object | None = None  # PN: case-folded form
    words: object | None = None  # PN: accent-free words, for fuzzy matching
    normalized: object | None = None  # TM / DT: padded, comparable form

    @property
    def tag(self) -> int:
        return self.path[-1]

    # Cached: results are built from these for every value of every match.
    @cached_property
    def key(self) -> str:
        return ".".join(f"{t:08X}" for t in self.path)

    @cached_property
    def keyword(self) -> str:
        return ".".join(keyword_for_tag(t) or f"{t:08X}" for t in self.path)

    @cached_property
    def vr(self) -> str:
        return dictionary_VR(self.tag)


def _t(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return tag


def _a(keyword: str, level: str, kind: str, column: object | None = None, **extra) -> Attribute:  # type: ignore[no-untyped-def]
    path = tuple(_t(k) for k in keyword.split("."))
    return Attribute(path, level, kind, column, **extra)


_STUDY_TIME = func.substr(Study.study_datetime, 9)
_PPS_TIME = func.substr(Series.performed_procedure_step_start_datetime, 9)

REGISTRY: list[Attribute] = [
    # Patient (returned and matched at study level and below).
    _a(
        "PatientName",
        "patient",
        PN,
        Patient.patient_name,
        folded=Patient.patient_name_folded,
        words=Patient.patient_name_words,
    ),
    _a("PatientID", "patient", TEXT, Patient.patient_id),
    _a("IssuerOfPatientID", "patient", TEXT, Patient.issuer_of_patient_id),
    _a("PatientBirthDate", "patient", DATE, Patient.patient_birth_date),
    _a("PatientSex", "patient", TEXT, Patient.patient_sex),
    _a("NumberOfPatientRelatedStudies", "patient", COMPUTED),
    _a("NumberOfPatientRelatedSeries", "patient", COMPUTED),
    _a("NumberOfPatientRelatedInstances", "patient", COMPUTED),
    # Study (PS3.18 Table 10.6.1-5).
    _a("StudyInstanceUID", STUDY, UID, Study.study_instance_uid),
    _a("StudyDate", STUDY, DATE, Study.study_date),
    _a("StudyTime", STUDY, TIME, Study.study_time, normalized=_STUDY_TIME),
    _a("AccessionNumber", STUDY, TEXT, Study.accession_number),
    _a("StudyID", STUDY, TEXT, Study.study_id),
    _a("StudyDescription", STUDY, TEXT, Study.study_description),
    _a(
        "ReferringPhysicianName",
        STUDY,
        PN,
        Study.referring_physician_name,
        folded=Study.referring_physician_name_folded,
        words=Study.referring_physician_name_words,
    ),
    _a("TimezoneOffsetFromUTC", STUDY, TEXT, Study.timezone_offset_from_utc),
    _a("ModalitiesInStudy", STUDY, COMPUTED),
    _a("NumberOfStudyRelatedSeries", STUDY, COMPUTED),
    _a("NumberOfStudyRelatedInstances", STUDY, COMPUTED),
    # Series.
    _a("SeriesInstanceUID", SERIES, UID, Series.series_instance_uid),
    _a("Modality", SERIES, TEXT, Series.modality),
    _a("SeriesNumber", SERIES, NUMBER, Series.series_number),
    _a("SeriesDescription", SERIES, TEXT, Series.series_description),
    _a("PerformedProcedureStepStartDate", SERIES, DATE, Series.performed_procedure_step_start_date),
    _a(
        "PerformedProcedureStepStartTime",
        SERIES,
        TIME,
        Series.performed_procedure_step_start_time,
        normalized=_PPS_TIME,
    ),
    _a(
        "RequestAttributesSequence.ScheduledProcedureStepID",
        SERIES,
        ITEM,
        RequestAttributes.scheduled_procedure_step_id,
    ),
    _a(
        "RequestAttributesSequence.RequestedProcedureID",
        SERIES,
        ITEM,
        RequestAttributes.requested_procedure_id,
    ),
    _a(
        "RequestAttributesSequence.AccessionNumber",
        SERIES,
        ITEM,
        RequestAttributes.accession_number,
    ),
    _a("NumberOfSeriesRelatedInstances", SERIES, COMPUTED),
    # Instance.
    _a("SOPInstanceUID", INSTANCE, UID, Instance.sop_instance_uid),
    _a("SOPClassUID", INSTANCE, UID, Instance.sop_class_uid),
    _a("InstanceNumber", INSTANCE, NUMBER, Instance.instance_number),
    _a("Rows", INSTANCE, NUMBER, Instance.rows),
    _a("Columns", INSTANCE, NUMBER, Instance.columns),
    _a("BitsAllocated", INSTANCE, NUMBER, Instance.bits_allocated),
    _a("NumberOfFrames", INSTANCE, NUMBER, Instance.number_of_frames),
    _a("AvailableTransferSyntaxUID", INSTANCE, UID, Instance.transfer_syntax_uid),
    _a("ContainerIdentifier", INSTANCE, TEXT, Instance.container_identifier),
    _a(
        "AcquisitionDateTime",
        INSTANCE,
        DATETIME,
        Instance.acquisition_datetime,
        normalized=Instance.acquisition_datetime_norm,
    ),
    _a(
        "SpecimenDescriptionSequence.SpecimenIdentifier",
        INSTANCE,
        ITEM,
        Specimen.specimen_identifier,
    ),
    _a("SpecimenDescriptionSequence.SpecimenUID", INSTANCE, ITEM, Specimen.specimen_uid),
]
BY_PATH: dict[tuple[int, ...], Attribute] = {a.path: a for a in REGISTRY}
# Keys a user may give without their sequence (the pathology keys of a slide's specimens).
ALIASES = {
    (_t("SpecimenIdentifier"),): BY_PATH[
        (_t("SpecimenDescriptionSequence"), _t("SpecimenIdentifier"))
    ],
    (_t("SpecimenUID"),): BY_PATH[(_t("SpecimenDescriptionSequence"), _t("SpecimenUID"))],
}
ITEM_TABLES = {
    _t("RequestAttributesSequence"): (RequestAttributes, RequestAttributes.series_pk, Series.pk),
    _t("SpecimenDescriptionSequence"): (Specimen, Specimen.instance_pk, Instance.pk),
}

# Attributes every result carries (PS3.18 Tables 10.6.3-3, -4 and -5).
DEFAULT_RETURN: dict[str, list[str]] = {
    # PS3.4 C.6.1.1.2 (Patient Root, for C-FIND).
    PATIENT: [
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "PatientBirthDate",
        "PatientSex",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
    ],
    STUDY: [
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "TimezoneOffsetFromUTC",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyID",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ],
    SERIES: [
        "Modality",
        "TimezoneOffsetFromUTC",
        "SeriesDescription",
        "SeriesInstanceUID",
        "SeriesNumber",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "NumberOfSeriesRelatedInstances",
    ],
    INSTANCE: [
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceNumber",
        "TimezoneOffsetFromUTC",
        "Rows",
        "Columns",
        "BitsAllocated",
        "NumberOfFrames",
        "AvailableTransferSyntaxUID",
    ],
}


def parse_key(key: str) -> tuple[int, ...] | None:
    """``PatientName``, ``00100010`` or a dotted sequence path → tag path; None if unknown."""
    path = []
    for part in key.split("."):
        if len(part) == 8 and all(c in "0123456789abcdefABCDEF" for c in part):
            path.append(int(part, 16))
        else:
            tag = tag_for_keyword(part)
            if tag is None:
                return None
            path.append(tag)
    return tuple(path)


def attribute_for(path: tuple[int, ...]) -> Attribute | None:
    """The registry entry for a tag path, None when the index does not keep it."""
    return BY_PATH.get(path) or ALIASES.get(path)


# -- matching (PS3.4 C.2.2.2) ------------------------------------------------------------------
Matcher = Callable[[Select, Attribute, str], Select]


def match_universal(query: Select, attribute: Attribute, value: str) -> Select:
    """C.2.2.2.3: an empty value matches everything (and asks for the attribute back)."""
    return query


def _values(value: str) -> list[str]:
    return [v for v in value.replace("\\", ",").split(",") if v != ""]


def match_uid_list(query: Select, attribute: Attribute, value: str) -> Select:
    """C.2.2.2.2: any of a list of UIDs (QIDO separates with ',', DIMSE with '\\')."""
    uids = [u.strip() for u in _values(value)]
    for uid in uids:
        if not is_valid_uid(uid):
            raise InvalidRequest(f"{attribute.keyword}={uid!r} is not a valid UID")
    column = attribute.column
    return query.where(column.in_(uids) if len(uids) > 1 else column == uids[0])  # type: ignore[union-attr]


def like_pattern(value: str) -> str:
    """DICOM wildcards to a LIKE pattern: '*' → '%', '?' → '_', literal '%', '_' escaped."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _text_condition(column, value: str) -> ColumnElement[bool]:  # type: ignore[no-untyped-def]
    if "*" in value or "?" in value:
        return column.like(like_pattern(value), escape="\\")
    return column == value


def match_text(query: Select, attribute: Attribute, value: str) -> Select:
    """C.2.2.2.1 / C.2.2.2.4: exact (case-sensitive) or wildcard; several values: any."""
    values = _values(value) if attribute.vr == "CS" else [value]
    conditions = [_text_condition(attribute.column, v) for v in values]
    return query.where(or_(*conditions) if len(conditions) > 1 else conditions[0])


def match_person_name(query: Select, attribute: Attribute, value: str) -> Select:
    """PN literal matching, insensitive to case as C.2.2.2.1 allows for PN."""
    return query.where(_text_condition(attribute.folded, fold(value)))


def match_fuzzy_person_name(query: Select, attribute: Attribute, value: str) -> Select:
    """fuzzymatching=true: case- and accent-insensitive; each word of the value is the start
    of some word of the name ('mul jea' finds 'Müller^Jean-Luc'); '*' and '?' still work."""
    plain = strip_accents(value).casefold()
    if "*" in plain or "?" in plain:
        # Words and wildcards kept, separators made single spaces, as in the stored form.
        pattern = like_pattern(re.sub(r"[^\w*?]+", " ", plain).strip())
        if not pattern.startswith(("%", "_")):
            pattern = "% " + pattern
        if not pattern.endswith("%"):
            pattern += " %"
        return query.where(attribute.words.like(pattern, escape="\\"))  # type: ignore[union-attr]
    words = name_words(plain)
    if not words:
        return query
    return query.where(
        and_(*[attribute.words.like(f"% {like_pattern(w)}%", escape="\\") for w in words])  # type: ignore[union-attr]
    )


def _bounds(attribute: Attribute, low: str, high: str) -> tuple[object, str, str]:
    """The comparable column and normalised bounds of a DA / TM / DT range."""
    if attribute.kind == DATE:
        return attribute.column, normalize_date(low), normalize_date(high)
    if attribute.kind == TIME:
        return attribute.normalized, normalize_time(low), normalize_time(high, upper=True)
    return attribute.normalized, normalize_datetime(low), normalize_datetime(high, upper=True)


def match_range(query: Select, attribute: Attribute, value: str) -> Select:
    """C.2.2.2.5: ``a-b``, ``-b``, ``a-``; a single value matches the span it names
    (``2020`` for a DT is the whole year). A TM range whose start is after its end wraps
    around midnight (``2300-0100``)."""
    low, dash, high = value.partition("-")
    if not dash:
        low = high = value
    column, lower, upper = _bounds(attribute, low, high)
    if attribute.kind == DATE and not dash:
        return query.where(column == lower)  # type: ignore[operator]
    conditions: list[ColumnElement[bool]] = [column != ""]  # type: ignore[operator]
    if attribute.kind == TIME and low and high and lower > upper:
        return query.where(column != "", or_(column >= lower, column <= upper))  # type: ignore[operator]
    if low:
        conditions.append(column >= lower)  # type: ignore[operator]
    if high:
        conditions.append(column <= upper)  # type: ignore[operator]
    return query.where(and_(*conditions))


def match_combined_datetime(query: Select, date_value: str, time_value: str) -> Select:
    """C.2.2.2.5.1: StudyDate and StudyTime given together match as one date-time range
    (``StudyDate=20201231-20210101&StudyTime=2300-0100`` spans one night)."""
    date_low, date_dash, date_high = date_value.partition("-")
    if not date_dash:
        date_low = date_high = date_value
    time_low, time_dash, time_high = time_value.partition("-")
    if not time_dash:
        time_low = time_high = time_value
    conditions: list[ColumnElement[bool]] = [Study.study_datetime != ""]
    if date_low:
        start = normalize_date(date_low) + (normalize_time(time_low) or "000000.000000")
        conditions.append(Study.study_datetime >= start)
    if date_high:
        end = normalize_date(date_high) + (normalize_time(time_high, upper=True) or "235959.999999")
        conditions.append(Study.study_datetime <= end)
    return query.where(and_(*conditions))


def match_number(query: Select, attribute: Attribute, value: str) -> Select:
    try:
        numbers = [int(v) for v in _values(value)]
    except ValueError as exc:
        raise InvalidRequest(f"{attribute.keyword}={value!r} is not an integer") from exc
    column = attribute.column
    return query.where(column.in_(numbers) if len(numbers) > 1 else column == numbers[0])  # type: ignore[union-attr]


def match_item(query: Select, attribute: Attribute, value: str) -> Select:
    """C.2.2.2.6 sequence matching: some item of the sequence matches the value."""
    table, foreign, owner = ITEM_TABLES[attribute.path[0]]
    return query.where(exists().where(foreign == owner, _text_condition(attribute.column, value)))


def match_modalities_in_study(query: Select, attribute: Attribute, value: str) -> Select:
    """ModalitiesInStudy: studies with a series of any listed modality."""
    conditions = [_text_condition(Series.modality, m.strip()) for m in _values(value)]
    return query.where(
        exists().where(Series.study_pk == Study.pk, or_(*conditions) if conditions else true())
    )


def match_empty(query: Select, attribute: Attribute, value: str) -> Select:
    """C.2.2.2.7 (emptyvaluematching=true): '""' matches entities whose value is empty."""
    if attribute.kind == ITEM:
        table, foreign, owner = ITEM_TABLES[attribute.path[0]]
        return query.where(
            ~exists().where(foreign == owner, attribute.column != "")  # type: ignore[operator]
        )
    if attribute.column is None:
        raise InvalidRequest(f"{attribute.keyword} cannot be matched against an empty value")
    column = attribute.column
    return query.where(or_(column.is_(None), column == ""))  # type: ignore[union-attr]


def _check_wildcards(attribute: Attribute, value: str) -> None:
    """C.2.2.2.4: wildcards are for string VRs only."""
    if ("*" in value or "?" in value) and attribute.kind in (UID, DATE, TIME, DATETIME, NUMBER):
        raise InvalidRequest(
            f"{attribute.keyword}={value!r}: wildcards are not allowed for VR {attribute.vr}"
        )


def matcher(attribute: Attribute, value: str, fuzzy: bool) -> Matcher:
    """Choose the matching function for *value* of *attribute*."""
    if value == "" or value == "*":
        return match_universal
    _check_wildcards(attribute, value)
    if attribute.kind == COMPUTED:
        if attribute.keyword == "ModalitiesInStudy":
            return match_modalities_in_study
        raise InvalidRequest(f"{attribute.keyword} is computed and cannot be a matching key")
    if attribute.kind == UID:
        return match_uid_list
    if attribute.kind == PN:
        return match_fuzzy_person_name if fuzzy else match_person_name
    if attribute.kind in (DATE, TIME, DATETIME):
        return match_range
    if attribute.kind == NUMBER:
        return match_number
    if attribute.kind == ITEM:
        return match_item
    return match_text


# -- search ------------------------------------------------------------------------------------
@dataclass
class Search:
    """One search: the level, its matching keys, what to return, and a page."""

    level: str
    filters: list[tuple[Attribute, str]] = field(default_factory=list)
    include: list[Attribute] = field(default_factory=list)
    include_other: list[tuple[int, ...]] = field(default_factory=list)  # from documents
    include_all: bool = False
    # Levels whose attributes each result carries (PS3.18 §10.6.3: /series also carries the
    # study's, /studies/{s}/instances the series', /instances both).
    levels: set[str] = field(default_factory=set)
    fuzzy: bool = False
    empty_value_matching: bool = False
    multiple_value_matching: bool = False
    limit: int | None = None
    offset: int = 0

    def _levels(self) -> set[str]:
        return {a.level for a, _ in self.filters} | {self.level}

    def base(self) -> Select:
        levels = self._levels()
        deepest = max(LEVEL_ORDER[level] for level in levels)
        key = KEYS[self.level]
        query = select(key)
        if self.level == PATIENT:
            query = query.select_from(Patient)
            if deepest >= 1:
                query = query.join(Study, Study.patient_pk == Patient.pk)
            if deepest >= 2:
                query = query.join(Series, Series.study_pk == Study.pk)
            if deepest >= 3:
                query = query.join(Instance, Instance.series_pk == Series.pk).where(
                    Instance.status == STORED
                )
        elif self.level == STUDY:
            query = query.select_from(Study)
            if "patient" in levels:
                query = query.join(Patient, Study.patient_pk == Patient.pk)
            if deepest >= 2:
                query = query.join(Series, Series.study_pk == Study.pk)
            if deepest >= 3:
                query = query.join(Instance, Instance.series_pk == Series.pk).where(
                    Instance.status == STORED
                )
        elif self.level == SERIES:
            query = query.select_from(Series)
            if levels & {STUDY, "patient"}:
                query = query.join(Study, Series.study_pk == Study.pk)
            if "patient" in levels:
                query = query.join(Patient, Study.patient_pk == Patient.pk)
            if deepest >= 3:
                query = query.join(Instance, Instance.series_pk == Series.pk).where(
                    Instance.status == STORED
                )
        else:
            query = query.select_from(Instance).where(Instance.status == STORED)
            query = query.join(Series, Instance.series_pk == Series.pk)
            if levels & {STUDY, "patient"}:
                query = query.join(Study, Series.study_pk == Study.pk)
            if "patient" in levels:
                query = query.join(Patient, Study.patient_pk == Patient.pk)
        return query

    def matched(self) -> Select:
        """The primary keys of every match (no paging)."""
        query = self.base()
        filters = list(self.filters)
        keywords = {a.keyword: v for a, v in filters}
        if keywords.get("StudyDate") and keywords.get("StudyTime"):
            query = match_combined_datetime(query, keywords["StudyDate"], keywords["StudyTime"])
            filters = [(a, v) for a, v in filters if a.keyword not in ("StudyDate", "StudyTime")]
        for attribute, value in filters:
            if self.empty_value_matching and value == '""':
                query = match_empty(query, attribute, value)
                continue
            if (
                self.multiple_value_matching
                and len(_values(value)) > 1
                and attribute.kind in (TEXT, COMPUTED)
            ):
                # C.2.2.2.8: every value must match (for a single-valued attribute: never).
                for one in _values(value):
                    query = matcher(attribute, one, self.fuzzy)(query, attribute, one)
                continue
            query = matcher(attribute, value, self.fuzzy)(query, attribute, value)
        if (
            self.level != INSTANCE
            and max(LEVEL_ORDER[level] for level in self._levels()) > LEVEL_ORDER[self.level]
        ):
            query = query.distinct()
        return query

    def statement(self) -> Select:
        query = self.matched().order_by(KEYS[self.level])
        if self.offset:
            query = query.offset(self.offset)
        if self.limit is not None:
            query = query.limit(self.limit)
        return query


@dataclass
class Page:
    """The results of a search and how many matches there are beyond them."""

    results: list[dict]
    remaining: int


def instance_files(engine: Engine, search: Search) -> list[tuple[str, str, str, str, str, str]]:
    """For C-MOVE / C-GET: (study, series, SOP instance, SOP class, transfer syntax, blob key)
    of every stored instance *search* (at any level) matches."""
    with engine.connect() as connection:
        pks = [row[0] for row in connection.execute(search.matched())]
        if not pks:
            return []
        owner = KEYS[search.level]
        query = (
            select(
                Study.study_instance_uid,
                Series.series_instance_uid,
                Instance.sop_instance_uid,
                Instance.sop_class_uid,
                Instance.transfer_syntax_uid,
                Instance.blob_key,
            )
            .select_from(Instance)
            .join(Series, Instance.series_pk == Series.pk)
            .join(Study, Series.study_pk == Study.pk)
            .join(Patient, Study.patient_pk == Patient.pk)
            .where(Instance.status == STORED)
            .order_by(Instance.pk)
        )
        found = []
        for start in range(0, len(pks), 500):
            found += connection.execute(query.where(owner.in_(pks[start : start + 500]))).all()
        return [tuple(row) for row in found]  # type: ignore[misc]


def run(engine: Engine, search: Search) -> Page:
    """Execute *search*: one DICOM JSON object per match, plus the count left unreturned."""
    with engine.connect() as connection:
        if search.limit is None:
            pks = [row[0] for row in connection.execute(search.statement())]
            remaining = 0
        else:
            limited = search.limit
            search.limit = limited + 1
            pks = [row[0] for row in connection.execute(search.statement())]
            search.limit = limited
            remaining = 0
            if len(pks) > limited:
                pks = pks[:limited]
                total = connection.scalar(
                    select(func.count()).select_from(search.matched().subquery())
                )
                remaining = max(int(total or 0) - search.offset - limited, 0)
        if not pks:
            return Page([], remaining)
        return Page(_results(connection, search, pks), remaining)


PARENT_UIDS = {SERIES: ["StudyInstanceUID"], INSTANCE: ["StudyInstanceUID", "SeriesInstanceUID"]}


def _returned(search: Search) -> list[Attribute]:
    keywords = list(DEFAULT_RETURN[search.level]) + PARENT_UIDS.get(search.level, [])
    for level in (STUDY, SERIES):
        if level in search.levels and level != search.level:
            keywords = DEFAULT_RETURN[level] + keywords
    wanted = [BY_PATH[(_t(k),)] for k in keywords]
    if search.include_all:
        wanted += [
            a
            for a in REGISTRY
            if a.level == search.level or (search.level == STUDY and a.level == "patient")
        ]
    wanted += [a for a, _ in search.filters] + search.include
    unique: dict[tuple[int, ...], Attribute] = {}
    for attribute in wanted:
        if LEVEL_ORDER[attribute.level] <= LEVEL_ORDER[search.level]:
            unique.setdefault(attribute.path, attribute)
    return list(unique.values())


KEYS = {PATIENT: Patient.pk, STUDY: Study.pk, SERIES: Series.pk, INSTANCE: Instance.pk}


def _rows_query(level: str, columns: list[object]) -> tuple[Select, object]:
    if level == PATIENT:
        return select(Patient.pk, *columns), Patient.pk
    if level == STUDY:
        query = select(Study.pk, *columns).join(Patient, Study.patient_pk == Patient.pk)
        return query, Study.pk
    if level == SERIES:
        query = (
            select(Series.pk, *columns)
            .join(Study, Series.study_pk == Study.pk)
            .join(Patient, Study.patient_pk == Patient.pk)
        )
        return query, Series.pk
    query = (
        select(Instance.pk, *columns)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
    )
    return query, Instance.pk


UID_COLUMNS = {
    PATIENT: [],
    STUDY: [Study.study_instance_uid],
    SERIES: [Study.study_instance_uid, Series.series_instance_uid],
    INSTANCE: [Study.study_instance_uid, Series.series_instance_uid, Instance.sop_instance_uid],
}


def _results(connection, search: Search, pks: Sequence[int]) -> list[dict]:  # type: ignore[no-untyped-def]
    attributes = _returned(search)
    plain = [a for a in attributes if a.kind not in (COMPUTED, ITEM)]
    uid_columns = UID_COLUMNS[search.level]
    extra = [Instance.pk] if search.level == INSTANCE else []
    query, key = _rows_query(search.level, [a.column for a in plain] + uid_columns + extra)
    rows = {row[0]: row for row in connection.execute(query.where(key.in_(pks)))}  # type: ignore[attr-defined]
    computed = _computed(connection, search.level, pks, {a.keyword for a in attributes})
    items = _items(connection, search.level, pks, [a for a in attributes if a.kind == ITEM])
    results = []
    for pk in pks:
        row = rows.get(pk)
        if row is None:
            continue
        dataset: dict = {}
        for position, attribute in enumerate(plain, start=1):
            dataset[attribute.key] = json_value(attribute.vr, row[position])
        for keyword, values in computed.items():
            attribute = BY_PATH[(_t(keyword),)]
            dataset[attribute.key] = json_value(attribute.vr, values.get(pk))
        for sequence_key, by_pk in items.items():
            dataset[sequence_key] = (
                {"vr": "SQ", "Value": by_pk.get(pk, [])} if by_pk.get(pk) else {"vr": "SQ"}
            )
        start = len(plain) + 1
        dataset["_uids"] = tuple(row[start : start + len(uid_columns)])
        results.append(dataset)
    if search.include_other or (search.include_all and search.level == INSTANCE):
        _add_from_documents(connection, search, pks, results)
    return results


def _add_from_documents(
    connection,
    search: Search,
    pks: Sequence[int],
    results: list[dict],  # type: ignore[no-untyped-def]
) -> None:
    """includefield of attributes the index does not keep: taken from the stored document of
    the instance (or, for a study or series, of its first instance). A sequence path returns
    the whole top-level sequence. Missing attributes come back empty (zero length)."""
    if search.level == PATIENT:
        return
    if search.level == INSTANCE:
        representative = {pk: pk for pk in pks}
    else:
        owner = Series.study_pk if search.level == STUDY else Instance.series_pk
        query = select(owner, func.min(Instance.pk)).where(Instance.status == STORED)
        if search.level == STUDY:
            query = query.join(Series, Instance.series_pk == Series.pk)
        representative = dict(connection.execute(query.where(owner.in_(pks)).group_by(owner)))
    documents = {
        pk: load(document)
        for pk, document in connection.execute(
            select(InstanceMetadata.instance_pk, InstanceMetadata.document).where(
                InstanceMetadata.instance_pk.in_(list(representative.values()))
            )
        )
    }
    wanted = {path[0] for path in search.include_other}
    for pk, dataset in zip(pks, results, strict=False):
        document = documents.get(representative.get(pk, -1), {})
        if search.include_all and search.level == INSTANCE:
            for key, element in document.items():
                if key not in dataset and key not in ("7FE00010", "7FE00008", "7FE00009"):
                    dataset[key] = element
        for tag in wanted:
            key = f"{tag:08X}"
            if key not in dataset:
                dataset[key] = document.get(key) or {"vr": _vr(tag)}


def _vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _computed(
    connection,
    level: str,
    pks: Sequence[int],
    keywords: set[str],  # type: ignore[no-untyped-def]
) -> dict[str, dict[int, object]]:
    out: dict[str, dict[int, object]] = {}
    if level == PATIENT:
        counts = connection.execute(
            select(
                Study.patient_pk,
                func.count(distinct(Study.pk)),
                func.count(distinct(Series.pk)),
                func.count(Instance.pk),
            )
            .join(Series, Series.study_pk == Study.pk)
            .join(Instance, Instance.series_pk == Series.pk)
            .where(Study.patient_pk.in_(pks), Instance.status == STORED)
            .group_by(Study.patient_pk)
        ).all()
        out["NumberOfPatientRelatedStudies"] = {pk: a for pk, a, _, _ in counts}
        out["NumberOfPatientRelatedSeries"] = {pk: b for pk, _, b, _ in counts}
        out["NumberOfPatientRelatedInstances"] = {pk: c for pk, _, _, c in counts}
    elif level == STUDY:
        if "ModalitiesInStudy" in keywords:
            modalities: dict[int, list[str]] = {}
            for study_pk, modality in connection.execute(
                select(Series.study_pk, Series.modality)
                .where(Series.study_pk.in_(pks))
                .group_by(Series.study_pk, Series.modality)
                .order_by(Series.modality)
            ):
                if modality:
                    modalities.setdefault(study_pk, []).append(modality)
            out["ModalitiesInStudy"] = modalities  # type: ignore[assignment]
        counts = connection.execute(
            select(Series.study_pk, func.count(distinct(Series.pk)), func.count(Instance.pk))
            .join(Instance, Instance.series_pk == Series.pk)
            .where(Series.study_pk.in_(pks), Instance.status == STORED)
            .group_by(Series.study_pk)
        ).all()
        out["NumberOfStudyRelatedSeries"] = {pk: s for pk, s, _ in counts}
        out["NumberOfStudyRelatedInstances"] = {pk: i for pk, _, i in counts}
    elif level == SERIES and "NumberOfSeriesRelatedInstances" in keywords:
        out["NumberOfSeriesRelatedInstances"] = dict(
            connection.execute(
                select(Instance.series_pk, func.count(Instance.pk))
                .where(Instance.series_pk.in_(pks), Instance.status == STORED)
                .group_by(Instance.series_pk)
            ).all()
        )
    return {k: v for k, v in out.items() if k in keywords}


def _items(
    connection,
    level: str,
    pks: Sequence[int],
    attributes: list[Attribute],  # type: ignore[no-untyped-def]
) -> dict[str, dict[int, list[dict]]]:
    """Sequence attributes to return: for each result, the items with the requested keys."""
    out: dict[str, dict[int, list[dict]]] = {}
    by_sequence: dict[int, list[Attribute]] = {}
    for attribute in attributes:
        by_sequence.setdefault(attribute.path[0], []).append(attribute)
    for sequence, members in by_sequence.items():
        table, foreign, owner = ITEM_TABLES[sequence]
        if level == STUDY:
            continue
        if level == INSTANCE and table is RequestAttributes:
            query = (
                select(Instance.pk, *[a.column for a in members])
                .join(RequestAttributes, RequestAttributes.series_pk == Instance.series_pk)
                .where(Instance.pk.in_(pks))
            )
        elif level == SERIES and table is Specimen:
            continue
        else:
            query = select(foreign, *[a.column for a in members]).where(foreign.in_(pks))  # type: ignore[attr-defined]
        found: dict[int, list[dict]] = {}
        for row in connection.execute(query):
            item = {
                f"{a.tag:08X}": json_value(a.vr, value)
                for a, value in zip(members, row[1:], strict=True)
            }
            found.setdefault(row[0], []).append(item)
        out[f"{sequence:08X}"] = found
    return out


def json_value(vr: str, value: object) -> dict:
    """A DICOM JSON attribute object for an index value (empty values have no "Value")."""
    if value is None or value == "" or value == []:
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": value}]}
    if isinstance(value, list):
        return {"vr": vr, "Value": value}
    if vr in ("IS", "US", "UL", "SS", "SL"):
        return {"vr": vr, "Value": [int(value)]}  # type: ignore[call-overload]
    return {"vr": vr, "Value": [value]}
