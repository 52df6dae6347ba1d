"""Attribute corrections after ingest: which attributes may change, their values checked by
VR (PS3.5 §6.2) before anything is touched, and the stored object rewritten with them,
its pixel data copied by offset (never the whole instance in memory)."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pydicom
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import validate_value

from storage.dicom.values import valid_date
from storage.errors import InvalidRequest


class Scope(StrEnum):
    """What an attribute describes: patient and study attributes are the whole study's, so
    they are corrected for a study only; specimen attributes may be for one series."""

    PATIENT = "patient"
    STUDY = "study"
    SPECIMEN = "specimen"


# The attributes a correction may set: the Patient Module (PS3.3 C.7.1.1), the General Study
# Module (C.7.2.1) and the Specimen Module (C.7.6.22). UIDs are not among them: a correction
# keeps the identity of the objects it corrects.
CORRECTABLE: dict[str, Scope] = {
    "PatientName": Scope.PATIENT,
    "PatientID": Scope.PATIENT,
    "IssuerOfPatientID": Scope.PATIENT,
    "PatientBirthDate": Scope.PATIENT,
    "PatientSex": Scope.PATIENT,
    "AccessionNumber": Scope.STUDY,
    "StudyDescription": Scope.STUDY,
    "StudyDate": Scope.STUDY,
    "StudyTime": Scope.STUDY,
    "ReferringPhysicianName": Scope.STUDY,
    "StudyID": Scope.STUDY,
    "ContainerIdentifier": Scope.SPECIMEN,
    "SpecimenDescriptionSequence": Scope.SPECIMEN,
}
# Specimen Description items are merged position by position: what an item names replaces
# that attribute of the stored item (e.g. its SpecimenIdentifier, or its whole Primary
# Anatomic Structure or Specimen Preparation (stain) sequence); the rest of it stays.
MERGED = 0x00400560  # Specimen Description Sequence
PATIENT_SEX = {"M", "F", "O"}  # PS3.3 C.7.1.1 Patient's Sex enumerated values
COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Correction:
    """The attributes to set (a data set of top-level elements) and the scopes they touch."""

    dataset: Dataset
    scopes: frozenset[Scope]

    @property
    def keywords(self) -> list[str]:
        return [element.keyword for element in self.dataset]

    def items_needed(self) -> int:
        """How many Specimen Description items the stored objects must have at least."""
        if MERGED not in self.dataset:
            return 0
        return len(self.dataset[MERGED].value)


def from_json(document: object) -> Correction:
    """The correction a DICOM JSON data set (PS3.18 F.2) asks for; InvalidRequest (400) with
    the reason when an attribute may not be changed or a value is not valid for its VR."""
    if not isinstance(document, Mapping) or not document:
        raise InvalidRequest("the change data set must be a non-empty DICOM JSON object")
    for key, element in document.items():
        tag = _tag(key)
        keyword = keyword_for_tag(tag)
        if keyword not in CORRECTABLE:
            raise InvalidRequest(
                f"attribute {key} ({keyword or 'unknown'}) cannot be corrected; these can: "
                + ", ".join(CORRECTABLE)
            )
        if not isinstance(element, Mapping) or element.get("vr") != dictionary_VR(tag):
            raise InvalidRequest(f"attribute {key} ({keyword}) must have VR {dictionary_VR(tag)}")
    try:
        dataset = Dataset.from_json(dict(document))
    except Exception as exc:  # noqa: BLE001 (pydicom raises several kinds on bad JSON)
        raise InvalidRequest(f"the change data set is not valid DICOM JSON: {exc}") from exc
    for element in dataset:
        _check(element, keyword_for_tag(element.tag))
    scopes = frozenset(CORRECTABLE[element.keyword] for element in dataset)
    return Correction(dataset, scopes)


def from_assignments(assignments: Iterable[str]) -> Correction:
    """The correction of KEYWORD=VALUE texts (the CLI's --set), for attributes of one value."""
    document: dict[str, Any] = {}
    for text in assignments:
        keyword, sep, value = text.partition("=")
        tag = tag_for_keyword(keyword.strip())
        if not sep or tag is None:
            raise InvalidRequest(f"{text!r} is not KEYWORD=VALUE with a DICOM keyword")
        vr = dictionary_VR(tag)
        if vr == "SQ":
            raise InvalidRequest(f"{keyword} is a sequence: give it in a DICOM JSON file")
        item: dict[str, Any] = {"vr": vr}
        if value:
            item["Value"] = [{"Alphabetic": value} if vr == "PN" else value]
        document[f"{tag:08X}"] = item
    return from_json(document)


def _tag(key: str) -> int:
    try:
        if len(key) != 8:
            raise ValueError(key)
        return int(key, 16)
    except ValueError as exc:
        raise InvalidRequest(f"{key!r} is not a DICOM JSON tag (8 hex digits)") from exc


def _check(element: DataElement, where: str) -> None:
    """Refuse a value its VR does not allow (PS3.5 Table 6.2-1), a UID anywhere, and more
    than one value where the attribute has one."""
    if element.VR == "UI":
        raise InvalidRequest(f"{where}: UIDs cannot be changed by a correction")
    if element.VR == "SQ":
        for number, item in enumerate(element.value, 1):
            for inner in item:
                _check(inner, f"{where} item {number} {inner.keyword or inner.tag}")
        return
    values = element.value if element.VM > 1 else [element.value]
    if element.VM > 1 and element.keyword in CORRECTABLE:
        raise InvalidRequest(f"{where} has one value, not {element.VM}")
    for value in values:
        if value is None or value == "":
            continue
        try:
            validate_value(element.VR, value, pydicom_config.RAISE)
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(f"{where}: {exc}") from exc
        if element.VR == "DA" and not valid_date(str(value)):
            raise InvalidRequest(f"{where}: {value!r} is not a date YYYYMMDD")
        if element.keyword == "PatientSex" and str(value) not in PATIENT_SEX:
            raise InvalidRequest(f"{where}: {value!r} is not one of M, F, O")


def needs_unicode(correction: Correction) -> bool:
    """Whether a value is not ASCII, so that only objects in UTF-8 (ISO_IR 192) can take it
    (rewriting other objects' character set would change how their other values read)."""
    return any(not str(element.value).isascii() for element in correction.dataset.iterall())


def apply(dataset: Dataset, correction: Correction) -> None:
    """Set the corrected attributes in a stored object's data set (in place)."""
    for element in correction.dataset:
        if element.tag != MERGED:
            dataset[element.tag] = copy.deepcopy(element)
            continue
        stored = dataset[MERGED].value if MERGED in dataset else []
        if len(stored) < len(element.value):
            raise InvalidRequest(
                f"the object has {len(stored)} Specimen Description items, the correction "
                f"names {len(element.value)}"
            )
        for given, item in zip(element.value, stored, strict=False):
            for inner in given:
                item[inner.tag] = copy.deepcopy(inner)


def rewrite(source: Path, correction: Correction, target: Path) -> None:
    """Write *source* with the corrected header to *target*: the header is read up to the
    pixel data (pydicom stops before it, leaving the file at the element's first byte) and
    written anew, then the pixel data element and all after it are copied unchanged."""
    with open(source, "rb") as fp:
        dataset = pydicom.dcmread(fp, stop_before_pixels=True)
        pixels_at = fp.tell()
        apply(dataset, correction)
        with open(target, "wb") as out:
            dataset.save_as(out, enforce_file_format=True)
            fp.seek(pixels_at)
            shutil.copyfileobj(fp, out, COPY_CHUNK)
