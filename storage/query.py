"""Search over the study index (QIDO-RS, C-FIND): attribute registry and PS3.4 C.2.2.2 matching.

Each matching type is one small function that extends a SQLAlchemy query (after pynetdicom's
qrscp): single value, UID list, wildcard, range, universal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from sqlalchemy import ColumnElement, Engine, Select, and_, distinct, exists, func, select

from storage.errors import InvalidRequest
from storage.models import STORED, Instance, Patient, Series, Study
from storage.uid import is_valid_uid

STUDY, SERIES, INSTANCE = "study", "series", "instance"
LEVEL_ORDER = {"patient": 0, STUDY: 1, SERIES: 2, INSTANCE: 3}


@dataclass(frozen=True)
class Attribute:
    """A searchable / returnable attribute and the index column holding it."""

    tag: int
    level: str
    column: object | None  # an ORM column, or None for computed attributes

    @property
    def keyword(self) -> str:
        return keyword_for_tag(self.tag)

    @property
    def vr(self) -> str:
        return dictionary_VR(self.tag)


def _a(keyword: str, level: str, column: object | None) -> Attribute:
    return Attribute(tag_for_keyword(keyword), level, column)  # type: ignore[arg-type]


ATTRIBUTES: dict[int, Attribute] = {
    a.tag: a
    for a in [
        _a("PatientName", "patient", Patient.patient_name),
        _a("PatientID", "patient", Patient.patient_id),
        _a("IssuerOfPatientID", "patient", Patient.issuer_of_patient_id),
        _a("PatientBirthDate", "patient", Patient.patient_birth_date),
        _a("PatientSex", "patient", Patient.patient_sex),
        _a("StudyInstanceUID", STUDY, Study.study_instance_uid),
        _a("StudyDate", STUDY, Study.study_date),
        _a("StudyTime", STUDY, Study.study_time),
        _a("AccessionNumber", STUDY, Study.accession_number),
        _a("StudyID", STUDY, Study.study_id),
        _a("StudyDescription", STUDY, Study.study_description),
        _a("ReferringPhysicianName", STUDY, Study.referring_physician_name),
        _a("TimezoneOffsetFromUTC", STUDY, Study.timezone_offset_from_utc),
        _a("ModalitiesInStudy", STUDY, None),
        _a("NumberOfStudyRelatedSeries", STUDY, None),
        _a("NumberOfStudyRelatedInstances", STUDY, None),
        _a("SeriesInstanceUID", SERIES, Series.series_instance_uid),
        _a("Modality", SERIES, Series.modality),
        _a("SeriesNumber", SERIES, Series.series_number),
        _a("SeriesDescription", SERIES, Series.series_description),
        _a("PerformedProcedureStepStartDate", SERIES, Series.performed_procedure_step_start_date),
        _a("PerformedProcedureStepStartTime", SERIES, Series.performed_procedure_step_start_time),
        _a("NumberOfSeriesRelatedInstances", SERIES, None),
        _a("SOPInstanceUID", INSTANCE, Instance.sop_instance_uid),
        _a("SOPClassUID", INSTANCE, Instance.sop_class_uid),
        _a("InstanceNumber", INSTANCE, Instance.instance_number),
        _a("Rows", INSTANCE, Instance.rows),
        _a("Columns", INSTANCE, Instance.columns),
        _a("NumberOfFrames", INSTANCE, Instance.number_of_frames),
        _a("AvailableTransferSyntaxUID", INSTANCE, Instance.transfer_syntax_uid),
    ]
}

# Attributes every result carries at each level (PS3.18 Tables 10.6.3-3/-4/-5, those indexed).
DEFAULT_RETURN: dict[str, list[str]] = {
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
        "StudyDescription",
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
        "Rows",
        "Columns",
        "NumberOfFrames",
        "AvailableTransferSyntaxUID",
        "TimezoneOffsetFromUTC",
    ],
}


def attribute_for(key: str) -> Attribute | None:
    """The registry entry for a keyword or 8-hex-digit tag, None when not searchable."""
    tag: int | None
    if len(key) == 8 and all(c in "0123456789abcdefABCDEF" for c in key):
        tag = int(key, 16)
    else:
        tag = tag_for_keyword(key)
    return ATTRIBUTES.get(tag) if tag is not None else None


# -- matching (PS3.4 C.2.2.2) ------------------------------------------------------------------
def match_universal(query: Select, attribute: Attribute, value: str) -> Select:
    """C.2.2.2.3: an empty value matches everything."""
    return query


def match_uid_list(query: Select, attribute: Attribute, value: str) -> Select:
    """C.2.2.2.2: any of a list of UIDs (QIDO separates with ',', DIMSE with '\\')."""
    uids = [u.strip() for u in value.replace("\\", ",").split(",") if u.strip()]
    for uid in uids:
        if not is_valid_uid(uid):
            raise InvalidRequest(f"{attribute.keyword}={uid!r} is not a valid UID")
    column = attribute.column
    return query.where(column.in_(uids) if len(uids) > 1 else column == uids[0])  # type: ignore[union-attr]


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def match_wildcard(query: Select, attribute: Attribute, value: str) -> Select:
    """C.2.2.2.4: '*' any run of characters, '?' one character; '%' and '_' stay literal."""
    return query.where(attribute.column.like(_like_pattern(value), escape="\\"))  # type: ignore[union-attr]


def match_single(query: Select, attribute: Attribute, value: str) -> Select:
    """C.2.2.2.1: the value, exactly."""
    column = attribute.column
    if attribute.vr in ("IS", "US", "UL", "SS", "SL"):
        try:
            return query.where(column == int(value))  # type: ignore[operator]
        except ValueError as exc:
            raise InvalidRequest(f"{attribute.keyword}={value!r} is not an integer") from exc
    return query.where(column == value)  # type: ignore[operator]


def match_range(query: Select, attribute: Attribute, value: str) -> Select:
    """C.2.2.2.5: ``a-b``, ``-b`` or ``a-`` over DA / TM / DT values."""
    low, _, high = value.partition("-")
    column = attribute.column
    conditions: list[ColumnElement[bool]] = [column != ""]  # type: ignore[operator]
    if low:
        conditions.append(column >= low)  # type: ignore[operator]
    if high:
        conditions.append(column <= high + ("\uffff" if attribute.vr != "DA" else ""))  # type: ignore[operator]
    return query.where(and_(*conditions))


def match_modalities_in_study(query: Select, attribute: Attribute, value: str) -> Select:
    """ModalitiesInStudy: studies with a series of any listed modality."""
    modalities = [m.strip() for m in value.replace("\\", ",").split(",") if m.strip()]
    return query.where(exists().where(Series.study_pk == Study.pk, Series.modality.in_(modalities)))


def matcher(attribute: Attribute, value: str):  # type: ignore[no-untyped-def]
    """Choose the matching function for *value* of *attribute*."""
    if value == "":
        return match_universal
    if attribute.tag == tag_for_keyword("ModalitiesInStudy"):
        return match_modalities_in_study
    if attribute.column is None:
        raise InvalidRequest(f"{attribute.keyword} cannot be used as a matching key")
    if attribute.vr == "UI":
        return match_uid_list
    if attribute.vr in ("DA", "TM", "DT") and "-" in value:
        return match_range
    if "*" in value or "?" in value:
        return match_wildcard
    return match_single


# -- search ------------------------------------------------------------------------------------
@dataclass
class Search:
    """One search: the level, its scope, matching keys, what to return, and a page."""

    level: str
    filters: list[tuple[Attribute, str]] = field(default_factory=list)
    include: list[Attribute] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0

    def base(self) -> Select:
        if self.level == STUDY:
            query = select(Study.pk).join(Patient, Study.patient_pk == Patient.pk)
            if any(LEVEL_ORDER[a.level] > 1 for a, _ in self.filters):
                query = query.join(Series, Series.study_pk == Study.pk)
        elif self.level == SERIES:
            query = (
                select(Series.pk)
                .join(Study, Series.study_pk == Study.pk)
                .join(Patient, Study.patient_pk == Patient.pk)
            )
        else:
            query = (
                select(Instance.pk)
                .join(Series, Instance.series_pk == Series.pk)
                .join(Study, Series.study_pk == Study.pk)
                .join(Patient, Study.patient_pk == Patient.pk)
                .where(Instance.status == STORED)
            )
        if self.level != INSTANCE and any(a.level == INSTANCE for a, _ in self.filters):
            query = query.join(Instance, Instance.series_pk == Series.pk).where(
                Instance.status == STORED
            )
        return query

    def statement(self) -> Select:
        query = self.base()
        for attribute, value in self.filters:
            query = matcher(attribute, value)(query, attribute, value)
        pk = {STUDY: Study.pk, SERIES: Series.pk, INSTANCE: Instance.pk}[self.level]
        query = query.group_by(pk).order_by(pk)
        if self.offset:
            query = query.offset(self.offset)
        if self.limit is not None:
            query = query.limit(self.limit)
        return query


def run(engine: Engine, search: Search) -> list[dict]:
    """Execute *search*; returns one DICOM JSON object per match (without URLs)."""
    with engine.connect() as connection:
        pks = [row[0] for row in connection.execute(search.statement())]
        if not pks:
            return []
        return _results(connection, search, pks)


def _returned(search: Search) -> list[Attribute]:
    keywords = list(DEFAULT_RETURN[search.level])
    if search.level in (SERIES, INSTANCE):
        keywords += DEFAULT_RETURN[STUDY]
    if search.level == INSTANCE:
        keywords += DEFAULT_RETURN[SERIES]
    wanted = [ATTRIBUTES[tag_for_keyword(k)] for k in keywords]  # type: ignore[index]
    wanted += [a for a, _ in search.filters] + search.include
    unique: dict[int, Attribute] = {}
    for attribute in wanted:
        if LEVEL_ORDER[attribute.level] <= LEVEL_ORDER[search.level]:
            unique.setdefault(attribute.tag, attribute)
    return list(unique.values())


def _results(connection, search: Search, pks: Sequence[int]) -> list[dict]:  # type: ignore[no-untyped-def]
    attributes = _returned(search)
    columns = [a for a in attributes if a.column is not None]
    if search.level == STUDY:
        key_column, uid_columns = Study.pk, [Study.study_instance_uid]
        query = select(Study.pk, *[a.column for a in columns]).join(
            Patient, Study.patient_pk == Patient.pk
        )
    elif search.level == SERIES:
        key_column, uid_columns = Series.pk, [Study.study_instance_uid, Series.series_instance_uid]
        query = (
            select(Series.pk, *[a.column for a in columns])
            .join(Study, Series.study_pk == Study.pk)
            .join(Patient, Study.patient_pk == Patient.pk)
        )
    else:
        key_column = Instance.pk
        uid_columns = [
            Study.study_instance_uid,
            Series.series_instance_uid,
            Instance.sop_instance_uid,
        ]
        query = (
            select(Instance.pk, *[a.column for a in columns])
            .join(Series, Instance.series_pk == Series.pk)
            .join(Study, Series.study_pk == Study.pk)
            .join(Patient, Study.patient_pk == Patient.pk)
        )
    query = query.add_columns(*uid_columns).where(key_column.in_(pks))
    rows = {row[0]: row for row in connection.execute(query)}
    computed = _computed(connection, search, pks, {a.keyword for a in attributes})
    results = []
    for pk in pks:
        row = rows.get(pk)
        if row is None:
            continue
        dataset: dict = {}
        for position, attribute in enumerate(columns, start=1):
            dataset[f"{attribute.tag:08X}"] = json_value(attribute.vr, row[position])
        for keyword, values in computed.items():
            if pk in values:
                tag = tag_for_keyword(keyword)
                dataset[f"{tag:08X}"] = json_value(dictionary_VR(tag), values[pk])
        uids = row[len(columns) + 1 :]
        dataset["_uids"] = tuple(uids)
        results.append(dataset)
    return results


def _computed(
    connection,
    search: Search,
    pks: Sequence[int],
    keywords: set[str],  # type: ignore[no-untyped-def]
) -> dict[str, dict[int, object]]:
    out: dict[str, dict[int, object]] = {}
    if search.level == STUDY:
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
    elif search.level == SERIES:
        out["NumberOfSeriesRelatedInstances"] = dict(
            connection.execute(
                select(Instance.series_pk, func.count(Instance.pk))
                .where(Instance.series_pk.in_(pks), Instance.status == STORED)
                .group_by(Instance.series_pk)
            ).all()
        )
    return {k: v for k, v in out.items() if k in keywords}


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
