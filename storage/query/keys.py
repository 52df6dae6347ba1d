"""The attributes a search can match and return (the registry), where the index keeps each,
and how a key in a query names one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from sqlalchemy import func

from storage.dicom.levels import Level
from storage.index.models import (
    Base,
    Instance,
    Patient,
    RequestAttributes,
    Series,
    Specimen,
    Study,
)


class Kind(StrEnum):
    """Kinds of attribute, each with its own matching rules (PS3.4 C.2.2.2)."""

    UID = "uid"
    TEXT = "text"
    PN = "pn"
    DATE = "date"
    TIME = "time"
    DATETIME = "datetime"
    NUMBER = "number"
    COMPUTED = "computed"  # counts and ModalitiesInStudy, computed from other rows
    ITEM = "item"  # an attribute of a sequence item, kept in a table of items


@dataclass(frozen=True)
class Attribute:
    """A searchable and returnable attribute: where the index keeps it and how it matches.

    ``path`` is the tag path from the top level; it has two tags for an attribute inside a
    sequence item (sequence matching, PS3.4 C.2.2.2.6).
    """

    path: tuple[int, ...]
    level: Level
    kind: Kind
    column: Any = None  # the value as returned
    folded: Any = None  # PN: case-folded form
    words: Any = None  # PN: accent-free words, for fuzzy matching
    phonetic: Any = None  # PN: the Soundex codes of its words, for fuzzy matching
    normalized: Any = None  # TM / DT: padded, comparable form

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
        return vr_of(self.tag)


@dataclass(frozen=True)
class ItemTable:
    """Where the items of a sequence are kept: their table, the level that owns them, and
    the foreign key that links an item to its owner's row."""

    table: type[Base]
    owner_level: Level
    foreign: Any
    owner: Any


def vr_of(tag: int) -> str:
    """The dictionary VR of *tag* (UN for private and unknown tags)."""
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _t(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return int(tag)


def _a(keyword: str, level: Level, kind: Kind, column: Any = None, **extra: Any) -> Attribute:
    path = tuple(_t(k) for k in keyword.split("."))
    return Attribute(path, level, kind, column, **extra)


def by_keyword(keyword: str) -> Attribute:
    """The registry entry of a top-level keyword the registry is known to hold."""
    return BY_PATH[(_t(keyword),)]


_STUDY_TIME = func.substr(Study.study_datetime, 9)
_PPS_TIME = func.substr(Series.performed_procedure_step_start_datetime, 9)

REGISTRY: list[Attribute] = [
    # Patient (returned and matched at study level and below).
    _a(
        "PatientName",
        Level.PATIENT,
        Kind.PN,
        Patient.patient_name,
        folded=Patient.patient_name_folded,
        words=Patient.patient_name_words,
        phonetic=Patient.patient_name_phonetic,
    ),
    _a("PatientID", Level.PATIENT, Kind.TEXT, Patient.patient_id),
    _a("IssuerOfPatientID", Level.PATIENT, Kind.TEXT, Patient.issuer_of_patient_id),
    _a("PatientBirthDate", Level.PATIENT, Kind.DATE, Patient.patient_birth_date),
    _a("PatientSex", Level.PATIENT, Kind.TEXT, Patient.patient_sex),
    _a("NumberOfPatientRelatedStudies", Level.PATIENT, Kind.COMPUTED),
    _a("NumberOfPatientRelatedSeries", Level.PATIENT, Kind.COMPUTED),
    _a("NumberOfPatientRelatedInstances", Level.PATIENT, Kind.COMPUTED),
    # Study (PS3.18 Table 10.6.1-5).
    _a("StudyInstanceUID", Level.STUDY, Kind.UID, Study.study_instance_uid),
    _a("StudyDate", Level.STUDY, Kind.DATE, Study.study_date),
    _a("StudyTime", Level.STUDY, Kind.TIME, Study.study_time, normalized=_STUDY_TIME),
    _a("AccessionNumber", Level.STUDY, Kind.TEXT, Study.accession_number),
    _a("StudyID", Level.STUDY, Kind.TEXT, Study.study_id),
    _a("StudyDescription", Level.STUDY, Kind.TEXT, Study.study_description),
    _a(
        "ReferringPhysicianName",
        Level.STUDY,
        Kind.PN,
        Study.referring_physician_name,
        folded=Study.referring_physician_name_folded,
        words=Study.referring_physician_name_words,
        phonetic=Study.referring_physician_name_phonetic,
    ),
    _a("TimezoneOffsetFromUTC", Level.STUDY, Kind.TEXT, Study.timezone_offset_from_utc),
    _a("ModalitiesInStudy", Level.STUDY, Kind.COMPUTED),
    _a("NumberOfStudyRelatedSeries", Level.STUDY, Kind.COMPUTED),
    _a("NumberOfStudyRelatedInstances", Level.STUDY, Kind.COMPUTED),
    # Series.
    _a("SeriesInstanceUID", Level.SERIES, Kind.UID, Series.series_instance_uid),
    _a("Modality", Level.SERIES, Kind.TEXT, Series.modality),
    _a("SeriesNumber", Level.SERIES, Kind.NUMBER, Series.series_number),
    _a("SeriesDescription", Level.SERIES, Kind.TEXT, Series.series_description),
    _a(
        "PerformedProcedureStepStartDate",
        Level.SERIES,
        Kind.DATE,
        Series.performed_procedure_step_start_date,
    ),
    _a(
        "PerformedProcedureStepStartTime",
        Level.SERIES,
        Kind.TIME,
        Series.performed_procedure_step_start_time,
        normalized=_PPS_TIME,
    ),
    _a(
        "RequestAttributesSequence.ScheduledProcedureStepID",
        Level.SERIES,
        Kind.ITEM,
        RequestAttributes.scheduled_procedure_step_id,
    ),
    _a(
        "RequestAttributesSequence.RequestedProcedureID",
        Level.SERIES,
        Kind.ITEM,
        RequestAttributes.requested_procedure_id,
    ),
    _a(
        "RequestAttributesSequence.AccessionNumber",
        Level.SERIES,
        Kind.ITEM,
        RequestAttributes.accession_number,
    ),
    _a("NumberOfSeriesRelatedInstances", Level.SERIES, Kind.COMPUTED),
    # Instance.
    _a("SOPInstanceUID", Level.INSTANCE, Kind.UID, Instance.sop_instance_uid),
    _a("SOPClassUID", Level.INSTANCE, Kind.UID, Instance.sop_class_uid),
    _a("InstanceNumber", Level.INSTANCE, Kind.NUMBER, Instance.instance_number),
    _a("Rows", Level.INSTANCE, Kind.NUMBER, Instance.rows),
    _a("Columns", Level.INSTANCE, Kind.NUMBER, Instance.columns),
    _a("BitsAllocated", Level.INSTANCE, Kind.NUMBER, Instance.bits_allocated),
    _a("NumberOfFrames", Level.INSTANCE, Kind.NUMBER, Instance.number_of_frames),
    _a("AvailableTransferSyntaxUID", Level.INSTANCE, Kind.UID, Instance.transfer_syntax_uid),
    _a("ContainerIdentifier", Level.INSTANCE, Kind.TEXT, Instance.container_identifier),
    _a(
        "AcquisitionDateTime",
        Level.INSTANCE,
        Kind.DATETIME,
        Instance.acquisition_datetime,
        normalized=Instance.acquisition_datetime_norm,
    ),
    _a(
        "SpecimenDescriptionSequence.SpecimenIdentifier",
        Level.INSTANCE,
        Kind.ITEM,
        Specimen.specimen_identifier,
    ),
    _a("SpecimenDescriptionSequence.SpecimenUID", Level.INSTANCE, Kind.ITEM, Specimen.specimen_uid),
]
BY_PATH: dict[tuple[int, ...], Attribute] = {a.path: a for a in REGISTRY}
# Keys a user may give without their sequence (the pathology keys of a slide's specimens).
ALIASES: dict[tuple[int, ...], Attribute] = {
    (_t("SpecimenIdentifier"),): BY_PATH[
        (_t("SpecimenDescriptionSequence"), _t("SpecimenIdentifier"))
    ],
    (_t("SpecimenUID"),): BY_PATH[(_t("SpecimenDescriptionSequence"), _t("SpecimenUID"))],
}
ITEM_TABLES = {
    _t("RequestAttributesSequence"): ItemTable(
        RequestAttributes, Level.SERIES, RequestAttributes.series_pk, Series.pk
    ),
    _t("SpecimenDescriptionSequence"): ItemTable(
        Specimen, Level.INSTANCE, Specimen.instance_pk, Instance.pk
    ),
}

# Attributes every result carries (PS3.18 Tables 10.6.3-3, -4 and -5).
DEFAULT_RETURN: dict[Level, list[str]] = {
    # PS3.4 C.6.1.1.2 (Patient Root, for C-FIND).
    Level.PATIENT: [
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "PatientBirthDate",
        "PatientSex",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
    ],
    Level.STUDY: [
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
    Level.SERIES: [
        "Modality",
        "TimezoneOffsetFromUTC",
        "SeriesDescription",
        "SeriesInstanceUID",
        "SeriesNumber",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "NumberOfSeriesRelatedInstances",
    ],
    Level.INSTANCE: [
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


# Results of a series or instance search also carry the UIDs of the levels above
# (PS3.18 Table 10.6.3-4 and -5).
PARENT_UIDS = {
    Level.SERIES: ["StudyInstanceUID"],
    Level.INSTANCE: ["StudyInstanceUID", "SeriesInstanceUID"],
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
            path.append(int(tag))
    return tuple(path)


def attribute_for(path: tuple[int, ...]) -> Attribute | None:
    """The registry entry for a tag path, None when the index does not keep it."""
    return BY_PATH.get(path) or ALIASES.get(path)
