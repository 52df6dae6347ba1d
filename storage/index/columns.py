"""The column values the study index keeps, taken from an instance's data set."""

from __future__ import annotations

from pydicom.dataset import Dataset

from storage.dicom.dataset import integer as _integer
from storage.dicom.dataset import items as _items
from storage.dicom.dataset import text as _text
from storage.dicom.values import (
    combine,
    fold,
    normalize_date,
    normalize_datetime,
    phonetic_column,
    words_column,
)


def name_values(prefix: str, name: str) -> dict[str, str]:
    """A person name with its folded and fuzzy search forms, as columns named *prefix*..."""
    return {
        prefix: name,
        f"{prefix}_folded": fold(name)[:400],
        f"{prefix}_words": words_column(name)[:500],
        f"{prefix}_phonetic": phonetic_column(name)[:500],
    }


def patient_values(dataset: Dataset) -> dict[str, str]:
    return {
        "patient_id": _text(dataset, "PatientID", 64),
        "issuer_of_patient_id": _text(dataset, "IssuerOfPatientID", 64),
        **name_values("patient_name", _text(dataset, "PatientName", 400)),
        "patient_birth_date": normalize_date(_text(dataset, "PatientBirthDate", 10)),
        "patient_sex": _text(dataset, "PatientSex", 16),
    }


def study_values(dataset: Dataset) -> dict[str, str]:
    date = normalize_date(_text(dataset, "StudyDate", 10))
    time = _text(dataset, "StudyTime", 16)
    return {
        "study_date": date,
        "study_time": time,
        "study_datetime": combine(date, time),
        "accession_number": _text(dataset, "AccessionNumber", 16),
        "study_id": _text(dataset, "StudyID", 16),
        "study_description": _text(dataset, "StudyDescription", 64),
        **name_values("referring_physician_name", _text(dataset, "ReferringPhysicianName", 400)),
        "timezone_offset_from_utc": _text(dataset, "TimezoneOffsetFromUTC", 16),
        "specific_character_set": _text(dataset, "SpecificCharacterSet", 128),
    }


def series_values(dataset: Dataset) -> dict[str, object]:
    return {
        "modality": _text(dataset, "Modality", 16),
        "series_number": _integer(dataset, "SeriesNumber"),
        "series_description": _text(dataset, "SeriesDescription", 64),
        "performed_procedure_step_start_date": _text(dataset, "PerformedProcedureStepStartDate", 8),
        "performed_procedure_step_start_time": _text(
            dataset, "PerformedProcedureStepStartTime", 16
        ),
        "performed_procedure_step_start_datetime": combine(
            _text(dataset, "PerformedProcedureStepStartDate", 10),
            _text(dataset, "PerformedProcedureStepStartTime", 16),
        ),
    }


def instance_values(dataset: Dataset) -> dict[str, object]:
    acquired = _text(dataset, "AcquisitionDateTime", 32)
    return {
        "instance_number": _integer(dataset, "InstanceNumber"),
        "rows": _integer(dataset, "Rows"),
        "columns": _integer(dataset, "Columns"),
        "bits_allocated": _integer(dataset, "BitsAllocated"),
        "container_identifier": _text(dataset, "ContainerIdentifier", 64),
        "acquisition_datetime": acquired,
        "acquisition_datetime_norm": normalize_datetime(acquired),
        "missing_specimen_facts": missing_specimen_facts(dataset),
    }


WSI_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.6"  # VL Whole Slide Microscopy Image Storage
# The specimen facts the WG-26 profile requires and PS3.3 C.7.6.22 lets be empty (Type 2),
# by the name the index records and a QIDO-RS search reports (docs/conformance.md §5.5).
SPECIMEN_FACTS = {
    "anatomy": "PrimaryAnatomicStructureSequence",
    "preparation": "SpecimenPreparationSequence",
}


def missing_specimen_facts(dataset: Dataset) -> str:
    """The WG-26 profile's specimen facts a whole-slide image lacks, comma-separated ("" for
    one that has them all, and for every other SOP class): a fact is missing when no item of
    the Specimen Description Sequence has its sequence with an item."""
    if _text(dataset, "SOPClassUID", 64) != WSI_STORAGE:
        return ""
    described = _items(dataset, "SpecimenDescriptionSequence")
    return ",".join(
        fact
        for fact, keyword in SPECIMEN_FACTS.items()
        if not any(_items(item, keyword) for item in described)
    )


def request_attributes(dataset: Dataset) -> list[dict[str, str]]:
    """The Request Attributes Sequence items a series is searched by."""
    return [
        {
            "requested_procedure_id": _text(item, "RequestedProcedureID", 16),
            "scheduled_procedure_step_id": _text(item, "ScheduledProcedureStepID", 16),
            "accession_number": _text(item, "AccessionNumber", 16),
        }
        for item in _items(dataset, "RequestAttributesSequence")
    ]


def specimens(dataset: Dataset) -> list[dict[str, str]]:
    """The specimens of the Specimen Description Sequence (PS3.3 C.7.6.22)."""
    return [
        {
            "specimen_identifier": _text(item, "SpecimenIdentifier", 64),
            "specimen_uid": _text(item, "SpecimenUID", 128),
        }
        for item in _items(dataset, "SpecimenDescriptionSequence")
    ]
