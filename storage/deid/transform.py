"""The Basic Application Level Confidentiality Profile applied to one data set (PS3.15 E.1):
each attribute, in sequences too, gets its Table E.1-1 action; private attributes go; the
patient gets the project's pseudonym; every UID maps to one new UID per project."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from pydicom._uid_dict import UID_dictionary
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.valuerep import PersonName

from storage.deid.table import Options, action_for

WSI_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"  # VL Whole Slide Microscopy Image Storage
NEVER_BY_DEFAULT = {"LABEL": "label", "OVERVIEW": "overview"}  # Image Type value 3 (C.8.12.4)
BURNED_IN = "burned-in"
UID_ROOT = "2.25."  # UUID-derived UIDs (PS3.5 B.2): 128 bits of the keyed digest
DUMMY_TEXT = "ANONYMIZED"
DUMMY_BY_VR: dict[str, object] = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000D",
    "DS": "0",
    "IS": "0",
    "UR": "urn:x-anonymized",
    "AT": 0,
}
HASHED_VRS = frozenset(("AE", "CS", "LO", "SH", "PN"))  # short strings: a consistent dummy
TEXT_VRS = frozenset(("LT", "ST", "UT", "UC", "LO", "SH", "PN", "CS", "AE"))
BINARY_VRS = frozenset(("OB", "OW", "OD", "OF", "OL", "OV", "UN"))
NUMBER_VRS = frozenset(("FL", "FD", "SL", "SS", "UL", "US", "SV", "UV"))
PATIENT_ID, PATIENT_NAME, OTHER_IDS = 0x00100020, 0x00100010, 0x00101000
ISSUER, BIRTH_DATE, ACCESSION = 0x00100021, 0x00100030, 0x00080050
STANDARD_UID_SUFFIXES = ("ClassUID", "SyntaxUID", "SchemeUID", "CodingSchemeUID", "CreatorUID")
MIN_WORD = 3  # shorter name parts are not scrubbed from cleaned text (they match anywhere)
# The option codes of PS3.16 CID 7050 (De-identification Method), from pydicom's table.
OPTION_CODES = (
    ("retain_uids", codes.DCM.RetainUidsOption),
    ("retain_device_identity", codes.DCM.RetainDeviceIdentityOption),
    ("clean_descriptors", codes.DCM.CleanDescriptorsOption),
    ("retain_modified_dates", codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption),
)
METHOD = "PS3.15 E.1 Basic Application Level Confidentiality Profile"


def left_out(dataset: Dataset, include: frozenset[str]) -> str | None:
    """Why an instance is not exported unless asked (*include* names what is asked: label,
    overview, burned-in), or None: a slide's label or overview image (Image Type value 3,
    PS3.3 C.8.12.4.1.1) shows its printed label, and BurnedInAnnotation YES says the pixels
    carry identifying text (PS3.15 E.1.1: the Basic Profile does not clean pixels)."""
    image_type = list(dataset.get("ImageType") or [])
    if str(dataset.get("SOPClassUID", "")) == WSI_CLASS and len(image_type) > 2:
        flag = NEVER_BY_DEFAULT.get(str(image_type[2]).upper())
        if flag is not None and flag not in include:
            return f"{str(image_type[2]).upper()} image (--include-{flag} to export it)"
    if str(dataset.get("BurnedInAnnotation", "")).upper() == "YES" and BURNED_IN not in include:
        return f"BurnedInAnnotation YES (--include-{BURNED_IN} to export it)"
    return None


@dataclass
class Pseudonyms:
    """The originals an export replaced and what replaced them, by kind (PatientID,
    PatientName, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID), for the map."""

    entries: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, kind: str, original: str, pseudonym: str) -> None:
        if original:
            self.entries[(kind, original)] = pseudonym

    def drain(self) -> list[tuple[str, str, str]]:
        found = [(kind, original, value) for (kind, original), value in self.entries.items()]
        self.entries.clear()
        return found


RECORDED_UIDS = {
    0x0020000D: "StudyInstanceUID",
    0x0020000E: "SeriesInstanceUID",
    0x00080018: "SOPInstanceUID",
}


class Deidentifier:
    """The profile with *options* under one project's *key*: the same original always
    becomes the same pseudonym in that project, and a different one in another."""

    def __init__(self, key: bytes, options: Options) -> None:
        self.key = key
        self.options = options
        self.pseudonyms = Pseudonyms()

    # -- pseudonyms --------------------------------------------------------------------------
    def _digest(self, *parts: str) -> bytes:
        return hmac.new(self.key, "\x00".join(parts).encode(), hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """The UID *original* maps to in this project (PS3.15 E.1.1 U: internally consistent
        within a set of instances), a 2.25 UID of 128 keyed bits."""
        original = original.strip()
        if not original or self.options.retain_uids:
            return original
        return UID_ROOT + str(int.from_bytes(self._digest("uid", original)[:16], "big"))

    def patient(self, dataset: Dataset) -> str:
        """The patient's pseudonym (Patient ID and Name of the exported objects): from the
        Patient ID and its issuer, else the name and birth date, else the study."""
        patient_id = str(dataset.get("PatientID", "") or "").strip()
        issuer = str(dataset.get("IssuerOfPatientID", "") or "").strip()
        basis: tuple[str, ...]
        if patient_id:
            basis = ("patient", issuer, patient_id)
        elif str(dataset.get("PatientName", "") or "").strip():
            basis = ("name", str(dataset.PatientName), str(dataset.get("PatientBirthDate", "")))
        else:
            basis = ("study", str(dataset.get("StudyInstanceUID", "")))
        return "P" + self._digest(*basis).hex()[:12].upper()

    def date_offset(self, pseudonym: str) -> timedelta:
        """How far the dates of one patient move with Retain Longitudinal Temporal
        Information with Modified Dates (PS3.15 E.3.6): back by 1 to 10 years, the same for
        every study of the patient in the project, so intervals between them stay."""
        days = 365 + int.from_bytes(self._digest("dates", pseudonym)[:4], "big") % (9 * 365)
        return timedelta(days=-days)

    def _hashed(self, tag: int, value: object) -> str:
        return "D" + self._digest("dummy", f"{tag:08X}", str(value)).hex()[:12].upper()

    # -- the profile -------------------------------------------------------------------------
    def apply(self, dataset: Dataset) -> Dataset:
        """De-identify *dataset* in place (header only: it has no pixel data) and return it."""
        pseudonym = self.patient(dataset)
        self.pseudonyms.add("PatientID", str(dataset.get("PatientID", "") or ""), pseudonym)
        self.pseudonyms.add("PatientName", str(dataset.get("PatientName", "") or ""), pseudonym)
        for tag, kind in RECORDED_UIDS.items():
            if tag in dataset and dataset[tag].value:
                original = str(dataset[tag].value)
                self.pseudonyms.add(kind, original, self.uid(original))
        state = _State(pseudonym, _identifiers(dataset), self.date_offset(pseudonym))
        self._dataset(dataset, state)
        dataset.PatientID = pseudonym
        dataset.PatientName = pseudonym
        self._mark(dataset)
        return dataset

    def _dataset(self, dataset: Dataset, state: _State) -> None:
        for element in list(dataset):
            tag = int(element.tag)
            if element.tag.is_private:
                del dataset[tag]  # PS3.15 E.1.1: private attributes X (no Retain Safe Private)
                continue
            if tag in (PATIENT_ID, PATIENT_NAME):
                element.value = state.pseudonym  # Z/D, Z: the pseudonym is the dummy value
                continue
            action = action_for(tag, self.options)
            if action is None and element.VR == "UI" and _instance_uid(element):
                action = "U"  # a reference the table does not list (see _instance_uid)
            self._element(dataset, element, _resolved(action, element), state)

    def _element(self, dataset: Dataset, element: DataElement, action: str, state: _State) -> None:
        tag, vr = int(element.tag), element.VR
        if action == "X":
            del dataset[tag]
        elif action == "K":
            if vr == "SQ":
                self._items(element, state)
        elif action == "Z":
            element.value = element.empty_value
        elif action == "U":
            if vr == "SQ":  # X/Z/U*: the sequence stays, its UIDs are replaced
                self._items(element, state)
            else:
                element.value = self._uids(element.value)
        elif action == "D":
            element.value = self._dummy(tag, element)
        elif action == "C":
            self._clean(element, state)

    def _items(self, element: DataElement, state: _State) -> None:
        for item in element.value or ():
            self._dataset(item, state)

    def _uids(self, value: object) -> object:
        if isinstance(value, MultiValue | list):
            return [self.uid(str(v)) for v in value]
        return self.uid(str(value)) if value else value

    def _dummy(self, tag: int, element: DataElement) -> object:
        """D: a non-zero length dummy value consistent with the VR (PS3.15 E.1.1). A
        sequence is emptied: a dummy item could carry the original's identifying codes."""
        vr = element.VR
        if vr == "SQ":
            return Sequence()
        if vr == "UI":
            return self._uids(element.value) if element.value else self.uid(f"{tag:08X}")
        if vr in HASHED_VRS:
            hashed = self._hashed(tag, element.value)
            return hashed if vr != "PN" else PersonName(hashed)
        if vr in DUMMY_BY_VR:
            return DUMMY_BY_VR[vr]
        if vr in NUMBER_VRS:
            return 0
        if vr in BINARY_VRS:
            return b"\x00\x00"
        return DUMMY_TEXT

    def _clean(self, element: DataElement, state: _State) -> None:
        """C: values of similar meaning that identify no one (PS3.15 E.3.5, E.3.6, E.3.8)."""
        if element.VR == "SQ":
            self._items(element, state)
            return
        if element.VR in ("DA", "DT") and self.options.retain_modified_dates:
            element.value = _shifted(element.value, element.VR, state.offset)
        elif element.VR in TEXT_VRS:
            element.value = _scrubbed(element.value, state.identifiers)

    def _mark(self, dataset: Dataset) -> None:
        """Patient Identity Removed, the method and its codes (PS3.3 C.7.1.1, CID 7050)."""
        dataset.PatientIdentityRemoved = "YES"
        chosen = [code for name, code in OPTION_CODES if getattr(self.options, name)]
        dataset.DeidentificationMethod = [METHOD] + [code.meaning[:64] for code in chosen]
        items = []
        for code in [codes.DCM.BasicApplicationConfidentialityProfile, *chosen]:
            item = Dataset()
            item.CodeValue = code.value
            item.CodingSchemeDesignator = code.scheme_designator
            item.CodeMeaning = code.meaning
            items.append(item)
        dataset.DeidentificationMethodCodeSequence = items
        modified = self.options.retain_modified_dates
        dataset.LongitudinalTemporalInformationModified = "MODIFIED" if modified else "REMOVED"


@dataclass(frozen=True)
class _State:
    pseudonym: str
    identifiers: tuple[str, ...]  # strings scrubbed from cleaned text, longest first
    offset: timedelta


def _resolved(action: str | None, element: DataElement) -> str:
    """One action of a compound one without the IOD at hand: the choice that keeps the
    attribute (PS3.15 E.1.1: Z or D where the IOD may need it), else K for unlisted ones."""
    if action is None:
        return "K"
    if action == "X/Z/U*":
        return "U"
    if action in ("X/Z/D", "X/D", "Z/D"):
        return "D"
    if action == "X/Z":
        return "Z"
    return action


def _instance_uid(element: DataElement) -> bool:
    """A UID attribute the table does not list that names instances rather than a class,
    syntax or scheme: mapped too (unless Retain UIDs), since an original instance UID would
    link the export back to the archive. Registered DICOM UIDs are never mapped."""
    keyword = element.keyword or ""
    if keyword.endswith(STANDARD_UID_SUFFIXES) or not element.value:
        return False
    values = element.value if isinstance(element.value, MultiValue) else [element.value]
    return any(str(v) not in UID_dictionary for v in values)


def _identifiers(dataset: Dataset) -> tuple[str, ...]:
    """The patient's identifying strings, which cleaned descriptors must not contain."""
    found: set[str] = set()
    for tag in (PATIENT_ID, OTHER_IDS, ISSUER, ACCESSION):
        if tag in dataset and dataset[tag].value:
            value = dataset[tag].value
            values = value if isinstance(value, MultiValue) else [value]
            found.update(str(v).strip() for v in values)
    for person in _names(dataset):
        found.update(word for word in re.split(r"[\^= ,]+", person) if len(word) >= MIN_WORD)
    birth = str(dataset.get("PatientBirthDate", "") or "")
    if re.fullmatch(r"\d{8}", birth):
        y, m, d = birth[:4], birth[4:6], birth[6:]
        found.update({birth, f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{d}/{m}/{y}", f"{m}/{d}/{y}"})
    return tuple(sorted((f for f in found if f), key=len, reverse=True))


def _names(dataset: Dataset) -> Iterable[str]:
    """Every person name in *dataset* and its sequences."""
    for element in dataset:
        if element.VR == "PN" and element.value:
            values = element.value if isinstance(element.value, MultiValue) else [element.value]
            yield from (str(v) for v in values)
        elif element.VR == "SQ":
            for item in element.value or ():
                yield from _names(item)


def _scrubbed(value: object, identifiers: tuple[str, ...]) -> object:
    if isinstance(value, MultiValue | list):
        return [_scrubbed(v, identifiers) for v in value]
    if value is None:
        return value
    text = str(value)
    for word in identifiers:
        text = re.sub(re.escape(word), "", text, flags=re.IGNORECASE)
    return text.strip()


def _shifted(value: object, vr: str, offset: timedelta) -> object:
    """A date (or the date of a date time) moved by *offset*; an unreadable one removed."""
    if isinstance(value, MultiValue | list):
        return [_shifted(v, vr, offset) for v in value]
    text = str(value or "")
    if len(text) < 8 or not text[:8].isdigit():
        return ""
    try:
        moved = date(int(text[:4]), int(text[4:6]), int(text[6:8])) + offset
    except ValueError:
        return ""
    return moved.strftime("%Y%m%d") + (text[8:] if vr == "DT" else "")
