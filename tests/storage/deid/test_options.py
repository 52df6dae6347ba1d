"""The option columns of Table E.1-1 and the compound actions by IOD Type, in one process:
each column's rows as the standard writes them (PS3.15 2024b, Table E.1-1), precedence when
options meet, Table E.1-1a's choices, and the de-identifier on small data sets."""

from __future__ import annotations

import copy

import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from storage.deid import Deidentifier, Options
from storage.deid.iod import attribute_type, resolve
from storage.deid.table import Column, action_for, basic_action

WSI, CT = "1.2.840.10008.5.1.4.1.1.77.1.6", "1.2.840.10008.5.1.4.1.1.2"
SR = "1.2.840.10008.5.1.4.1.1.88.33"

# (option, attribute) -> the action of the option's column; written from the standard.
COLUMN_ROWS = {
    ("retain_institution_identity", "InstitutionName"): "K",
    ("retain_institution_identity", "InstitutionAddress"): "K",
    ("retain_institution_identity", "InstitutionalDepartmentName"): "K",
    ("retain_institution_identity", "InstitutionCodeSequence"): "K",
    ("retain_institution_identity", "ClinicalTrialSiteName"): "K",
    ("retain_patient_characteristics", "PatientSex"): "K",
    ("retain_patient_characteristics", "PatientAge"): "K",
    ("retain_patient_characteristics", "PatientSize"): "K",
    ("retain_patient_characteristics", "PatientWeight"): "K",
    ("retain_patient_characteristics", "EthnicGroup"): "K",
    ("retain_patient_characteristics", "SmokingStatus"): "K",
    ("retain_patient_characteristics", "PregnancyStatus"): "K",
    ("retain_patient_characteristics", "Allergies"): "C",
    ("retain_patient_characteristics", "SpecialNeeds"): "C",
    ("retain_full_dates", "StudyDate"): "K",
    ("retain_full_dates", "AcquisitionDateTime"): "K",
    ("retain_full_dates", "ContentTime"): "K",
    ("retain_full_dates", "TimezoneOffsetFromUTC"): "K",
    ("retain_full_dates", "FrameOriginTimestamp"): "K",
    ("retain_modified_dates", "FrameOriginTimestamp"): "C",
    ("clean_structured_content", "ContentSequence"): "C",
    ("clean_structured_content", "AcquisitionContextSequence"): "C",
    ("clean_structured_content", "SpecimenPreparationSequence"): "C",
    ("clean_graphics", "GraphicAnnotationSequence"): "C",
}
# Attributes the same columns leave to the Basic Profile.
NOT_IN_COLUMN = {
    ("retain_institution_identity", "StationName"): "X/Z/D",
    ("retain_patient_characteristics", "PatientBirthDate"): "Z",
    ("retain_patient_characteristics", "PatientName"): "Z",
    ("retain_full_dates", "PatientBirthDate"): "Z",
    ("clean_structured_content", "PersonName"): "D",
    ("clean_graphics", "ContentSequence"): "D",
}


@pytest.mark.parametrize(("key", "expected"), sorted((COLUMN_ROWS | NOT_IN_COLUMN).items()))
def test_each_column_row(key: tuple[str, str], expected: str) -> None:
    option, keyword = key
    tag = int(tag_for_keyword(keyword) or 0)
    assert tag, keyword
    assert action_for(tag, Options(**{option: True})) == expected
    assert basic_action(tag) is not None  # every row is a row of the Basic Profile too


def test_graphics_masked_rows() -> None:
    chosen = Options(clean_graphics=True)
    for tag in (0x60003000, 0x60024000, 0x501E0010):  # overlay data, comments, curve data
        assert basic_action(tag) == "X" and action_for(tag, chosen) == "C", f"{tag:08X}"
    assert action_for(0x60000010, chosen) is None  # Overlay Rows: not in the table


def test_text_inside_cleaned_sequences_is_cleaned() -> None:
    text, unformatted = 0x0040A160, 0x00700006
    assert action_for(text, Options()) is None  # not in the table
    assert action_for(text, Options(clean_structured_content=True), frozenset({0x0040A730}))
    assert action_for(text, Options(clean_structured_content=True), frozenset()) is None
    assert action_for(unformatted, Options(), frozenset({0x00700001})) == "D"
    assert action_for(unformatted, Options(clean_graphics=True), frozenset({0x00700001})) == "C"


def test_the_most_retaining_action_wins() -> None:
    both = Options(clean_descriptors=True, retain_patient_characteristics=True)
    assert action_for(int(tag_for_keyword("Allergies") or 0), both) == "C"
    uid_and_dates = Options(retain_uids=True, retain_modified_dates=True)
    assert action_for(int(tag_for_keyword("StudyInstanceUID") or 0), uid_and_dates) == "K"
    assert Options(retain_uids=True, clean_graphics=True).columns() == (
        Column.RETAIN_UIDS,
        Column.CLEAN_GRAPHICS,
    )
    with pytest.raises(ValueError, match="full or modified"):
        Options(retain_full_dates=True, retain_modified_dates=True)


@pytest.mark.parametrize(
    ("action", "kind", "expected"),
    [
        ("X/Z", "3", "X"), ("X/Z", "2", "Z"), ("X/Z", "1", "Z"), ("X/Z", None, "Z"),
        ("X/D", "3", "X"), ("X/D", "2C", "D"), ("X/D", "1", "D"),
        ("Z/D", "3", "Z"), ("Z/D", "2", "Z"), ("Z/D", "1C", "D"), ("Z/D", None, "D"),
        ("X/Z/D", "3", "X"), ("X/Z/D", "2", "Z"), ("X/Z/D", "1", "D"), ("X/Z/D", None, "D"),
        ("X/Z/U*", "3", "X"), ("X/Z/U*", "2", "Z"), ("X/Z/U*", "1C", "U"),
        ("X", "1", "X"), ("D", "3", "D"),
    ],
)  # fmt: skip
def test_table_e11a_choices(action: str, kind: str | None, expected: str) -> None:
    assert resolve(action, kind) == expected


def test_types_from_the_iods() -> None:
    assert attribute_type(WSI, ("DeviceSerialNumber",)) == "1"  # Enhanced General Equipment
    assert attribute_type(CT, ("DeviceSerialNumber",)) == "3"  # General Equipment
    assert attribute_type(CT, ("TotalPixelMatrixColumns",)) == "3"  # not in the CT IOD
    assert attribute_type(CT, ("InstitutionName",)) == "3"  # General Equipment
    inside = ("ReferringPhysicianIdentificationSequence", "InstitutionName")
    assert attribute_type(WSI, inside) == "1C"  # Person Identification Macro
    assert attribute_type(SR, ("ContentSequence", "InstitutionName")) == "3"  # not in items
    assert attribute_type(SR, ("ContentSequence", "Nothing", "InstitutionName")) is None
    assert attribute_type("1.2.3.4", ("DeviceSerialNumber",)) is None  # an unknown class


def _object(sop_class: str) -> Dataset:
    dataset = Dataset()
    dataset.SOPClassUID = sop_class
    dataset.SOPInstanceUID = "1.2.3.4.5"
    dataset.StudyInstanceUID = "1.2.3.4"
    dataset.PatientID, dataset.PatientName = "MRN-1", "Doe^Jane"
    dataset.DeviceSerialNumber = "SN-1"
    dataset.InstitutionName = "General"
    dataset.ContentDate = "20260101"
    return dataset


def test_the_same_table_gives_each_iod_what_it_needs() -> None:
    deidentifier = Deidentifier(b"k" * 32, Options())
    wsi = deidentifier.apply(_object(WSI))
    ct = deidentifier.apply(_object(CT))
    assert wsi.DeviceSerialNumber not in ("", "SN-1") and "DeviceSerialNumber" not in ct
    assert wsi.ContentDate not in ("", "20260101") and ct.ContentDate == ""
    assert "InstitutionName" not in wsi and "InstitutionName" not in ct
    unknown = deidentifier.apply(_object("1.2.3.4.9"))  # no IOD at hand: kept as dummies
    assert unknown.DeviceSerialNumber not in ("", "SN-1") and unknown.InstitutionName != "General"


def test_safe_private_needs_the_option() -> None:
    dataset = _object(CT)
    block = dataset.private_block(0x7053, "Philips PET Private Group", create=True)
    block.add_new(0x00, "DS", "1.5")
    block.add_new(0x01, "LO", "Doe")
    plain = Deidentifier(b"k" * 32, Options()).apply(copy.deepcopy(dataset))
    assert not [e for e in plain if e.tag.is_private]
    kept = Deidentifier(b"k" * 32, Options(retain_safe_private=True)).apply(dataset)
    assert [int(e.tag) for e in kept if e.tag.is_private] == [0x70530010, 0x70531000]


def test_the_tables_read_one_module_at_a_time_are_highdicoms() -> None:
    """iod.py decodes highdicom's module table itself (not to hold 22 MB of it): what it
    keeps is what highdicom's own loader gives for those attributes."""
    from highdicom._standard_utils import get_module_attribute_map

    from storage.deid import iod

    kept = iod._modules()
    full = get_module_attribute_map()
    assert set(kept) == set(full)
    for module, attributes in full.items():
        paths = {((*a["path"], a["keyword"]), a["type"]) for a in attributes}
        assert set(kept[module]) <= paths, module
        sequences = {p for p in paths if p[0][-1].endswith("Sequence")}
        assert sequences <= set(kept[module]), module


def test_full_dates_keep_no_copy_of_the_birth_date() -> None:
    dataset = _object(CT)
    dataset.PatientBirthDate = "19610302"
    dataset.StudyDate = "20260101"
    item = Dataset()
    item.ValueType, item.Date = "DATE", "19610302"
    dataset.ContentSequence = [item]
    options = Options(retain_full_dates=True, clean_structured_content=True)
    after = Deidentifier(b"k" * 32, options).apply(dataset)
    assert after.StudyDate == "20260101" and after.PatientBirthDate == ""
    assert after.ContentSequence[0].Date not in ("", "19610302")
