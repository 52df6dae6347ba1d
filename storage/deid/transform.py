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

from storage.deid.iod import attribute_type, resolve
from storage.deid.table import Column, Options, action_for, safe_private

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
# Container Identifier, Specimen Identifier (D): cleaned text must not repeat them either.
SPECIMEN_IDS = frozenset((0x00400512, 0x00400551))
STANDARD_UID_SUFFIXES = ("ClassUID", "SyntaxUID", "SchemeUID", "CodingSchemeUID", "CreatorUID")
MIN_WORD = 3  # shorter name parts are not scrubbed from cleaned text (they match anywhere)
# The option codes of PS3.16 CID 7050 (De-identification Method), from pydicom's table, in
# the order they are recorded.
DCM = codes.DCM
OPTION_CODES = {
    Column.RETAIN_UIDS: DCM.RetainUidsOption,
    Column.RETAIN_DEVICE_IDENTITY: DCM.RetainDeviceIdentityOption,
    Column.CLEAN_DESCRIPTORS: DCM.CleanDescriptorsOption,
    Column.RETAIN_MODIFIED_DATES: DCM.RetainLongitudinalTemporalInformationModifiedDatesOption,
    Column.RETAIN_SAFE_PRIVATE: DCM.RetainSafePrivateOption,
    Column.RETAIN_INSTITUTION_IDENTITY: DCM.RetainInstitutionIdentityOption,
    Column.RETAIN_PATIENT_CHARACTERISTICS: DCM.RetainPatientCharacteristicsOption,
    Column.RETAIN_FULL_DATES: DCM.RetainLongitudinalTemporalInformationFullDatesOption,
    Column.CLEAN_STRUCTURED_CONTENT: DCM.CleanStructuredContentOption,
    Column.CLEAN_GRAPHICS: DCM.CleanGraphicsOption,
}
OVERLAY_FIRST, OVERLAY_LAST, OVERLAY_DATA = 0x6000, 0x601E, 0x3000  # repeating groups, element
# Private Data Element Characteristics Sequence (PS3.3 C.12.1.1.7) and its items' attributes.
PRIVATE_CHARACTERISTICS, PRIVATE_GROUP, PRIVATE_CREATOR = 0x00080300, 0x00080301, 0x00080302
BLOCK_STATUS, NONIDENTIFYING = 0x00080303, 0x00080304  # SAFE, UNSAFE or MIXED; elements
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
        state = _State(
            pseudonym,
            _identifiers(dataset),
            self.date_offset(pseudonym),
            str(dataset.get("SOPClassUID", "")),
            str(dataset.get("PatientBirthDate", "") or "").strip(),
        )
        self._dataset(dataset, state, (), frozenset())
        dataset.PatientID = pseudonym
        dataset.PatientName = pseudonym
        self._mark(dataset)
        return dataset

    def _dataset(
        self, dataset: Dataset, state: _State, path: tuple[str, ...], within: frozenset[int]
    ) -> None:
        """Each attribute of *dataset*, which lies in the sequences *path* (keywords) and
        *within* (tags) of the object."""
        kept = self._safe_private(dataset)
        overlays = _overlays(dataset)
        for element in list(dataset):
            tag = int(element.tag)
            if element.tag.is_private:  # X, unless Retain Safe Private finds it safe (E.3.10)
                if tag not in kept:
                    del dataset[tag]
                elif element.VR == "SQ":
                    self._items(element, state, path, within)
                continue
            if tag in (PATIENT_ID, PATIENT_NAME):
                element.value = state.pseudonym  # Z/D, Z: the pseudonym is the dummy value
                continue
            action = action_for(tag, self.options, within)
            if action is None and element.VR == "UI" and _instance_uid(element):
                action = "U"  # a reference the table does not list (see _instance_uid)
            if action is None:
                action = "K"
            elif "/" in action:  # a compound action: by the attribute's Type in the IOD
                kind = attribute_type(state.sop_class, (*path, element.keyword or f"{tag:08X}"))
                action = resolve(action, kind)
            self._element(dataset, element, action, state, path, within)
        _drop_bare_overlays(dataset, overlays)

    def _safe_private(self, dataset: Dataset) -> set[int]:
        """The private attributes of *dataset* Retain Safe Private keeps (PS3.15 E.3.10):
        those Table E.3.10-1 lists, and those the object's Private Data Element
        Characteristics Sequence declares non-identifying (a SAFE block, or the elements a
        MIXED block names); and the Private Creator elements of their blocks."""
        if not self.options.retain_safe_private:
            return set()
        declared: dict[tuple[int, str], frozenset[int] | None] = {}
        items = dataset[PRIVATE_CHARACTERISTICS].value if PRIVATE_CHARACTERISTICS in dataset else ()
        for item in items or ():
            group = item.get(PRIVATE_GROUP)
            creator = item.get(PRIVATE_CREATOR)
            if group is None or creator is None:
                continue
            status = str(item.get(BLOCK_STATUS).value if BLOCK_STATUS in item else "").upper()
            key = (int(group.value), _text(creator.value))
            if status == "SAFE":
                declared[key] = None
            elif status == "MIXED" and NONIDENTIFYING in item:
                value = item[NONIDENTIFYING].value
                values = value if isinstance(value, MultiValue | list) else [value]
                declared[key] = frozenset(int(v) & 0xFF for v in values)
        kept: set[int] = set()
        for element in dataset:
            tag = int(element.tag)
            group, number = tag >> 16, tag & 0xFFFF
            if not element.tag.is_private or number < 0x1000:
                continue  # creators (gggg,0010-00FF) are kept below, with their blocks
            creator_tag = (group << 16) | (number >> 8)
            creator = _text(dataset[creator_tag].value) if creator_tag in dataset else ""
            block = declared.get((group, creator), frozenset())
            if safe_private(creator, tag) or block is None or (number & 0xFF) in block:
                kept |= {tag, creator_tag}
        return kept

    def _element(
        self,
        dataset: Dataset,
        element: DataElement,
        action: str,
        state: _State,
        path: tuple[str, ...],
        within: frozenset[int],
    ) -> None:
        tag, vr = int(element.tag), element.VR
        if action == "X":
            del dataset[tag]
        elif action == "K":
            if vr == "SQ":
                self._items(element, state, path, within)
            elif vr in ("DA", "DT") and _is_birth(element.value, state.birth):
                element.value = self._dummy(tag, element)  # Patient's Birth Date is never K
        elif action == "Z":
            element.value = element.empty_value
        elif action == "U":
            if vr == "SQ":  # X/Z/U*: the sequence stays, its UIDs are replaced
                self._items(element, state, path, within)
            else:
                element.value = self._uids(element.value)
        elif action == "D":
            element.value = self._dummy(tag, element)
        elif action == "C":
            if vr in BINARY_VRS:
                del dataset[tag]  # bytes (a bitmap, a timestamp) cannot be cleaned: removed
            elif vr == "SQ":
                self._items(element, state, path, within)
            else:
                self._clean(element, state)

    def _items(
        self, element: DataElement, state: _State, path: tuple[str, ...], within: frozenset[int]
    ) -> None:
        inner = (*path, element.keyword or f"{int(element.tag):08X}")
        for item in element.value or ():
            self._dataset(item, state, inner, within | {int(element.tag)})

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
        """C: values of similar meaning that identify no one (PS3.15 E.3.3 to E.3.8, E.3.11)."""
        if element.VR in ("DA", "DT") and self.options.retain_modified_dates:
            element.value = _shifted(element.value, element.VR, state.offset)
        elif element.VR in TEXT_VRS:  # a value that was all identifiers: the dummy text
            cleaned = _scrubbed(element.value, state.identifiers)
            element.value = cleaned if cleaned or not element.value else DUMMY_TEXT

    def _mark(self, dataset: Dataset) -> None:
        """Patient Identity Removed, the method and its codes (PS3.3 C.7.1.1, CID 7050)."""
        dataset.PatientIdentityRemoved = "YES"
        columns = self.options.columns()
        chosen = [code for column, code in OPTION_CODES.items() if column in columns]
        dataset.DeidentificationMethod = [METHOD] + [code.meaning[:64] for code in chosen]
        items = []
        for code in [codes.DCM.BasicApplicationConfidentialityProfile, *chosen]:
            item = Dataset()
            item.CodeValue = code.value
            item.CodingSchemeDesignator = code.scheme_designator
            item.CodeMeaning = code.meaning
            items.append(item)
        dataset.DeidentificationMethodCodeSequence = items
        dataset.LongitudinalTemporalInformationModified = (
            "UNMODIFIED"
            if self.options.retain_full_dates
            else "MODIFIED"
            if self.options.retain_modified_dates
            else "REMOVED"
        )


@dataclass(frozen=True)
class _State:
    pseudonym: str
    identifiers: tuple[str, ...]  # strings scrubbed from cleaned text, longest first
    offset: timedelta
    sop_class: str  # whose IOD decides the compound actions
    birth: str  # Patient's Birth Date: no date kept (Full Dates) may repeat it


def _is_birth(value: object, birth: str) -> bool:
    """Whether a date (or date time) *value* is the patient's birth date *birth*."""
    values = value if isinstance(value, MultiValue | list) else [value]
    return bool(birth) and any(str(v or "").startswith(birth) for v in values)


def _text(value: object) -> str:
    """A Private Creator (LO) as text, also when read as bytes (UN)."""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    return str(value).strip()


def _overlays(dataset: Dataset) -> list[int]:
    """The groups of the overlays with Overlay Data (60xx,3000) in *dataset*."""
    return [
        group
        for group in range(OVERLAY_FIRST, OVERLAY_LAST + 1, 2)
        if (group << 16 | OVERLAY_DATA) in dataset
    ]


def _drop_bare_overlays(dataset: Dataset, overlays: list[int]) -> None:
    """An overlay whose Overlay Data (60xx,3000) the table removed goes whole: the rest of
    its group (rows, columns, origin; PS3.3 C.9.2) describes a bitmap that is not there."""
    for group in overlays:
        if (group << 16 | OVERLAY_DATA) not in dataset:
            for tag in [int(e.tag) for e in dataset if int(e.tag) >> 16 == group]:
                del dataset[tag]


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
    """The patient's identifying strings (and the slide's container and specimen
    identifiers), which cleaned text must not contain."""
    found: set[str] = set()
    for tag in (PATIENT_ID, OTHER_IDS, ISSUER, ACCESSION):
        if tag in dataset and dataset[tag].value:
            value = dataset[tag].value
            values = value if isinstance(value, MultiValue) else [value]
            found.update(str(v).strip() for v in values)
    found.update(_values(dataset, SPECIMEN_IDS))
    for person in _names(dataset):
        found.update(word for word in re.split(r"[\^= ,]+", person) if len(word) >= MIN_WORD)
    birth = str(dataset.get("PatientBirthDate", "") or "")
    if re.fullmatch(r"\d{8}", birth):
        y, m, d = birth[:4], birth[4:6], birth[6:]
        found.update({birth, f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{d}/{m}/{y}", f"{m}/{d}/{y}"})
    return tuple(sorted((f for f in found if f), key=len, reverse=True))


def _values(dataset: Dataset, tags: frozenset[int]) -> Iterable[str]:
    """The values of the attributes *tags* in *dataset* and its sequences."""
    for element in dataset:
        if int(element.tag) in tags and element.value:
            values = element.value if isinstance(element.value, MultiValue) else [element.value]
            yield from (str(v).strip() for v in values)
        elif element.VR == "SQ":
            for item in element.value or ():
                yield from _values(item, tags)


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
