"""De-identified export (PS3.15 E.1): real slides and radiology objects, given a patient's
identity, stored, exported with `wsiarchive export`, and checked attribute by attribute
against Table E.1-1, byte by byte for identifiers, and pixel by pixel against the originals."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom._uid_dict import UID_dictionary
from pydicom.dataset import Dataset
from pydicom.uid import UID

from storage.deid.table import Options, action_for, basic_action
from wsiarchive.cli import main

SLIDE = "dicom/3dhistech-wg26-BPAEC"  # a 3DHISTECH WG-26 pyramid with its LABEL image
CT = "radiology/pydicom_CT_small.dcm"  # a CT with a patient name and ID of its own
MR = "radiology/pydicom_MR_small.dcm"
CR = "radiology/fodicom_CR-MONO1-10-chest.nopreamble"
BURNED = "radiology/fodicom_CT-MONO2-16-ankle.dcm"  # marked BurnedInAnnotation YES below
NAME, GIVEN, MIDDLE = "Okafor", "Adaeze", "Ngozi"
PATIENT_ID, BIRTH, ACCESSION = "MRN-4417-Z", "19610302", "ACC-99812"
PHYSICIAN, STATION, INSTITUTION = "Brennan^Siobhan", "SCANNER-7-WARD", "St Elsewhere"
SERIAL = "SN-88-1234"
# Everything that names the patient (and the planted people and places): none of it may
# survive anywhere in an exported object, in any element or byte.
SECRETS = [NAME, GIVEN, MIDDLE, PATIENT_ID, BIRTH, ACCESSION, "Brennan", "Siobhan", INSTITUTION]

# PS3.15 (2026d) Table E.1-1, Basic Profile column, for the attributes the planted objects
# carry, written from the standard independently of the library the archive uses.
TABLE_E11 = {
    "AccessionNumber": "Z",
    "AcquisitionDateTime": "X/Z/D",
    "AcquisitionContextSequence": "X/Z",
    "ContainerIdentifier": "D",
    "ContentDate": "Z/D",
    "ContentTime": "Z/D",
    "DeviceSerialNumber": "X/Z/D",
    "FrameOfReferenceUID": "U",
    "ImageComments": "X",
    "InstanceCreationDate": "X/D",
    "InstanceCreationTime": "X/Z/D",
    "InstitutionAddress": "X",
    "InstitutionName": "X/Z/D",
    "IssuerOfPatientID": "X",
    "OperatorsName": "X/Z/D",
    "OtherPatientIDsSequence": "X",
    "OtherPatientNames": "X",
    "PatientAge": "X",
    "PatientBirthDate": "Z",
    "PatientComments": "X",
    "PatientID": "Z/D",
    "PatientName": "Z",
    "PatientSex": "Z",
    "PatientWeight": "X",
    "PerformingPhysicianName": "X",
    "ReferencedImageSequence": "X/Z/U*",
    "ReferringPhysicianName": "Z",
    "SeriesDate": "X/D",
    "SeriesDescription": "X",
    "SeriesInstanceUID": "U",
    "SOPInstanceUID": "U",
    "StationName": "X/Z/D",
    "StudyDate": "Z",
    "StudyDescription": "X",
    "StudyID": "Z",
    "StudyInstanceUID": "U",
    "StudyTime": "Z",
    "TimezoneOffsetFromUTC": "X",
    "ContentSequence": "D",
    "GraphicAnnotationSequence": "D",
    "PresentationCreationDate": "X",  # Type 1 in the presentation state, X all the same
    "DimensionOrganizationUID": "U",
    "SpecimenIdentifier": "D",
    "SpecimenUID": "U",
    "SpecimenPreparationSequence": "Z",
    "IssuerOfTheContainerIdentifierSequence": "Z",
}
# The compound actions resolved by the Type of the attribute in each planted object's IOD
# (PS3.15 Table E.1-1a; the Types written from PS3.3, independently of the tables the archive
# reads): Type 1 D (U for X/Z/U*), Type 2 Z, Type 3 or not in the IOD X.
WSI_CLASS, CT_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6", "1.2.840.10008.5.1.4.1.1.2"
CR_CLASS, ANN_CLASS = "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.91.1"
MR_CLASS = "1.2.840.10008.5.1.4.1.1.4"
SR_CLASS, PR_CLASS = "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.11.1"
_TYPE3 = {
    "AcquisitionDateTime": "X",  # General Acquisition (C.7.10.1): 3
    "AcquisitionContextSequence": "X",  # not in the IOD
    "DeviceSerialNumber": "X",  # General Equipment (C.7.5.1): 3
    "InstanceCreationDate": "X",  # SOP Common (C.12.1): 3
    "InstanceCreationTime": "X",
    "InstitutionName": "X",  # General Equipment: 3
    "OperatorsName": "X",  # General Series (C.7.3.1): 3
    "ReferencedImageSequence": "X",  # General Image (C.7.6.1): 3
    "SeriesDate": "X",  # General Series: 3
    "StationName": "X",  # General Equipment: 3
    "ContentDate": "Z",  # Z/D: not in the IOD, Z (Z/D is never a removal)
    "ContentTime": "Z",
}
RESOLVED = {
    WSI_CLASS: _TYPE3
    | {
        "AcquisitionDateTime": "D",  # Whole Slide Microscopy Image (C.8.12.4): 1
        "AcquisitionContextSequence": "Z",  # Acquisition Context (C.7.6.14): 2
        "ContentDate": "D",  # Whole Slide Microscopy Image: 1
        "ContentTime": "D",
        "DeviceSerialNumber": "D",  # Enhanced General Equipment (C.7.5.2): 1
    },
    CT_CLASS: _TYPE3,  # Content Date and Time: General Image (C.7.6.1) 2C, Z
    CR_CLASS: _TYPE3,
    MR_CLASS: _TYPE3,  # Content Date and Time: General Image 2C
    ANN_CLASS: _TYPE3
    | {
        "ContentDate": "D",  # Microscopy Bulk Simple Annotations (C.37.1.2): 1
        "ContentTime": "D",
        "DeviceSerialNumber": "D",  # Enhanced General Equipment: 1
        "ReferencedImageSequence": "U",  # Microscopy Bulk Simple Annotations: 1C
    },
    SR_CLASS: _TYPE3 | {"ContentDate": "D", "ContentTime": "D"},  # SR Document General: 1
    PR_CLASS: _TYPE3,
}
# Every row of the 2026d table whose Basic Profile action is U, and every one that is D.
U_ROWS = (
    0x00080017, 0x00209161, 0x30100006, 0x30100013, 0x00181002, 0x04000100, 0x00209164, 0x300A0013,
    0x3010006E, 0x00080058, 0x0070031A, 0x00200052, 0x00281214, 0x0018100B, 0x00020003, 0x003A0310,
    0x0040A402, 0x0040A171, 0x00281199, 0x300A0650, 0x00701101, 0x00701102, 0x00080019, 0x3010000B,
    0x300A0083, 0x3010006F, 0x30100031, 0x30060024, 0x00404023, 0x0040A172, 0x00081155, 0x00041511,
    0x300A0785, 0x300600C2, 0x00001001, 0x3010003B, 0x00080018, 0x30100015, 0x00640003, 0x00400554,
    0x00880140, 0x0020000D, 0x00200200, 0x300A0054, 0x00182042, 0x0040DB0D, 0x0040DB0C, 0x00620021,
    0x00081195, 0x300A0609, 0x300A0700, 0x0040A124, 0x0020000E, 0x00080014,
)  # fmt: skip
D_ROWS = (
    0x001811BB, 0x006A0005, 0x006A0003, 0x00440104, 0x04000562, 0x300C0127, 0x04000115, 0x00120081,
    0x00120020, 0x00120010, 0x00120040, 0x00120042, 0x00400512, 0x0040A730, 0x00080107, 0x00080106,
    0x0040A121, 0x0040A120, 0x00189701, 0x21000140, 0x3010002D, 0x04000105, 0x00686226, 0x00420011,
    0x30100035, 0x30100038, 0x00189804, 0x00340002, 0x00340001, 0x00189074, 0x00340007, 0x00189151,
    0x00189623, 0x00700001, 0x0072000A, 0x003A0314, 0x00686270, 0x300A0741, 0x300A0742, 0x300A0783,
    0x04000563, 0x300A0760, 0x00401101, 0x0040A123, 0x300A0002, 0x30100054, 0x300A062A, 0x300A0619,
    0x300A0623, 0x300A067C, 0x04000565, 0x300A073A, 0x0040A13A, 0x30080162, 0x30080164, 0x30080166,
    0x30080168, 0x0072005E, 0x0072005F, 0x00720061, 0x00720063, 0x00720066, 0x00720068, 0x00720065,
    0x0072006A, 0x0072006C, 0x0072006E, 0x0072006B, 0x0072006D, 0x00720071, 0x00720070, 0x0018936A,
    0x00340005, 0x00189369, 0x300A022C, 0x300A022E, 0x00400551, 0x30060002, 0x00189371, 0x00189367,
    0x0040A030, 0x0040A075, 0x0040A073, 0x0040A027, 0x300A0608, 0x300A0736, 0x300A0734, 0x00700006,
    0x30100033, 0x30100034, 0x30080024, 0x30080025,
)  # fmt: skip
# The option columns for some of them (Rtn. UIDs, Rtn. Dev. Id., Clean Desc., Modif. Dates).
OPTION_E11 = {
    ("retain_uids", "SOPInstanceUID"): "K",
    ("retain_uids", "ReferencedImageSequence"): "K",
    ("retain_device_identity", "DeviceSerialNumber"): "K",
    ("retain_device_identity", "StationName"): "K",
    ("clean_descriptors", "StudyDescription"): "C",
    ("clean_descriptors", "SeriesDescription"): "C",
    ("clean_descriptors", "ImageComments"): "C",
    ("retain_modified_dates", "StudyDate"): "C",
    ("retain_modified_dates", "AcquisitionDateTime"): "C",
}
# The columns of the other options for the attributes the planted objects carry (PS3.15
# Table E.1-1: "Rtn. Inst. Id.", "Rtn. Pat. Chars.", "Rtn. Long. Full Dates", "Clean Struct.
# Cont.", "Clean Graph."; Retain Safe Private is checked on the private blocks below).
COLUMNS: dict[str, dict[str, str]] = {
    "--retain-institution-identity": {"InstitutionName": "K", "InstitutionAddress": "K"},
    "--retain-patient-characteristics": {
        "PatientSex": "K",
        "PatientAge": "K",
        "PatientWeight": "K",
    },
    "--retain-full-dates": dict.fromkeys(
        (
            "StudyDate",
            "StudyTime",
            "SeriesDate",
            "ContentDate",
            "ContentTime",
            "AcquisitionDateTime",
            "InstanceCreationDate",
            "InstanceCreationTime",
            "PresentationCreationDate",
            "PresentationCreationTime",
            "TimezoneOffsetFromUTC",
        ),
        "K",
    ),  # fmt: skip
    "--clean-structured-content": {
        "ContentSequence": "C",
        "AcquisitionContextSequence": "C",
        "SpecimenPreparationSequence": "C",
    },
    "--clean-graphics": {"GraphicAnnotationSequence": "C"},
    "--retain-safe-private": {},
}
# PS3.16 CID 7050 De-identification Method codes.
CID_7050 = {"basic": "113100", "retain_uids": "113110", "retain_device_identity": "113109"}
CID_7050 |= {"clean_descriptors": "113105", "retain_modified_dates": "113107"}
CID_7050 |= {"--retain-safe-private": "113111", "--retain-institution-identity": "113112"}
CID_7050 |= {"--retain-patient-characteristics": "113108", "--retain-full-dates": "113106"}
CID_7050 |= {"--clean-structured-content": "113104", "--clean-graphics": "113103"}


def _plant(dataset: Dataset) -> Dataset:
    """Give a real object a patient (and people, places and private data that name her)."""
    dataset.PatientName = f"{NAME}^{GIVEN}^{MIDDLE}"
    dataset.PatientID = PATIENT_ID
    dataset.IssuerOfPatientID = "GENERAL-HOSPITAL"
    dataset.PatientBirthDate = BIRTH
    dataset.PatientSex = "F"
    dataset.PatientAge = "063Y"
    dataset.PatientWeight = "61"
    dataset.OtherPatientNames = f"{NAME}^Ada"
    other = Dataset()
    other.PatientID = PATIENT_ID + "-OLD"
    other.TypeOfPatientID = "TEXT"
    dataset.OtherPatientIDsSequence = [other]
    dataset.PatientComments = f"Patient {NAME} prefers mornings"
    dataset.AccessionNumber = ACCESSION
    dataset.StudyID = "S-" + PATIENT_ID
    dataset.StudyDate = "20261117"
    dataset.StudyTime = "101500"
    dataset.SeriesDate = "20261118"
    dataset.ReferringPhysicianName = PHYSICIAN
    dataset.PerformingPhysicianName = PHYSICIAN
    dataset.OperatorsName = "Brennan^S"
    dataset.InstitutionName = INSTITUTION
    dataset.InstitutionAddress = "1 Hospital Road"
    dataset.StationName = STATION
    dataset.DeviceSerialNumber = SERIAL
    dataset.StudyDescription = f"Lung biopsy of {NAME} {PATIENT_ID}"
    dataset.SeriesDescription = "H&E stain"
    dataset.ImageComments = f"Scanned for Dr Brennan, patient {GIVEN} {NAME}, born {BIRTH}"
    block = dataset.private_block(0x0011, "HOSPITAL PRIVATE", create=True)
    block.add_new(0x01, "LO", f"{NAME}^{GIVEN}")
    block.add_new(0x02, "LO", PATIENT_ID)
    context = Dataset()
    context.ValueType = "TEXT"
    context.TextValue = f"Collected from {NAME} on {BIRTH}"
    dataset.AcquisitionContextSequence = [context]
    for item in dataset.get("SpecimenDescriptionSequence") or []:
        item.SpecimenIdentifier = f"{ACCESSION}-A1"
        step = Dataset()
        content = []
        for concept, text in (
            (_code("121041", "Specimen Identifier"), f"{ACCESSION}-A1"),
            (_code("121106", "Comment"), "fixed in formalin by Dr Brennan"),
        ):
            entry = Dataset()
            entry.ValueType, entry.ConceptNameCodeSequence, entry.TextValue = (
                "TEXT",
                [concept],
                text,
            )
            content.append(entry)
        step.SpecimenPreparationStepContentItemSequence = content
        item.SpecimenPreparationSequence = [step]
        nested = item.private_block(0x0013, "SPECIMEN PRIVATE", create=True)
        nested.add_new(0x10, "LO", f"{NAME} {PATIENT_ID}")
    if "ContainerIdentifier" in dataset:
        dataset.ContainerIdentifier = f"{ACCESSION}-1"
    # Private attributes safe by Table E.3.10-1 (Philips PET scale factors), and blocks the
    # object declares (PS3.3 C.12.1.1.7): one SAFE, one MIXED with one element named safe.
    pet = dataset.private_block(0x7053, "Philips PET Private Group", create=True)
    pet.add_new(0x00, "DS", "1.25")  # SUV Factor
    pet.add_new(0x09, "DS", "0.5")  # Activity Concentration Scale Factor
    pet.add_new(0x20, "LO", PATIENT_ID)  # not in the table
    safe = dataset.private_block(0x0015, "ACME SAFE", create=True)
    safe.add_new(0x01, "DS", "42")
    mixed = dataset.private_block(0x0017, "ACME MIXED", create=True)
    mixed.add_new(0x01, "DS", "7")
    mixed.add_new(0x02, "LO", f"{NAME}^{GIVEN}")
    characteristics = []
    for group, creator, status, safe_elements in (
        (0x0015, "ACME SAFE", "SAFE", None),
        (0x0017, "ACME MIXED", "MIXED", [0x01]),
        (0x0011, "HOSPITAL PRIVATE", "UNSAFE", None),
    ):
        item = Dataset()
        item.add_new(0x00080301, "US", group)  # Private Group Reference
        item.add_new(0x00080302, "LO", creator)  # Private Creator Reference
        item.add_new(0x00080303, "CS", status)  # Block Identifying Information Status
        if safe_elements is not None:
            item.add_new(0x00080304, "US", safe_elements)  # Nonidentifying Private Elements
        characteristics.append(item)
    dataset.add_new(0x00080300, "SQ", characteristics)
    return dataset


@dataclass(frozen=True)
class Stored:
    """The archive the planted objects are in, and their originals."""

    root: Path
    data: Path
    originals: dict[str, Path]  # by SOP Instance UID
    studies: list[str]
    reference: tuple[str, str]  # a level's SOP Instance UID and the one it references
    annotations: str  # SOP Instance UID of annotations on the referenced level


@pytest.fixture(scope="module")
def archive(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Stored:
    """The planted objects stored in an archive of their own; originals by SOP UID."""
    root = tmp_path_factory.mktemp("deid")
    planted = root / "planted"
    planted.mkdir()
    originals: dict[str, Path] = {}
    slide_files = sorted(p for p in (testdata / SLIDE).iterdir() if p.name != "readme.txt")
    volumes = []
    for path in [*slide_files, testdata / CT, testdata / MR, testdata / CR, testdata / BURNED]:
        dataset = _plant(pydicom.dcmread(path, force=True))
        if path == testdata / BURNED:
            dataset.BurnedInAnnotation = "YES"
        if "TransferSyntaxUID" not in dataset.file_meta:  # the CR without a preamble
            dataset.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2")
        if list(dataset.get("ImageType", []))[2:3] == ["VOLUME"]:
            volumes.append(dataset)
        target = planted / f"{len(originals):02d}.dcm"
        dataset.save_as(target, enforce_file_format=True)
        originals[str(dataset.SOPInstanceUID)] = target
    # One level references another (a reference in a sequence must map like its target).
    source, referenced = volumes[0], volumes[1]
    item = Dataset()
    item.ReferencedSOPClassUID = referenced.SOPClassUID
    item.ReferencedSOPInstanceUID = referenced.SOPInstanceUID
    source.ReferencedImageSequence = [item]
    source.save_as(originals[str(source.SOPInstanceUID)], enforce_file_format=True)
    for name, made in (
        ("annotations", _annotations(referenced)),
        ("report", _report(referenced)),
        ("presentation", _presentation(referenced)),
    ):
        path = planted / f"{name}.dcm"
        made.save_as(path, enforce_file_format=True)
        originals[str(made.SOPInstanceUID)] = path
    annotations = pydicom.dcmread(planted / "annotations.dcm")
    data = root / "data"
    assert main(["import", str(planted), "--data-dir", str(data)]) == 0
    studies = sorted({str(pydicom.dcmread(p).StudyInstanceUID) for p in originals.values()})
    reference = (str(source.SOPInstanceUID), str(referenced.SOPInstanceUID))
    return Stored(root, data, originals, studies, reference, str(annotations.SOPInstanceUID))


def _annotations(level: Dataset) -> Dataset:
    """Microscopy Bulk Simple Annotations on *level* (PS3.3 A.87): in the slide's study and
    frame of reference, referencing the level's series and instance, with the annotator."""
    dataset = pydicom.dataset.FileDataset(
        "", Dataset(), file_meta=pydicom.dataset.FileMetaDataset()
    )
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset.SOPClassUID = UID("1.2.840.10008.5.1.4.1.1.91.1")
    dataset.SOPInstanceUID = pydicom.uid.generate_uid()
    dataset.SeriesInstanceUID = pydicom.uid.generate_uid()
    dataset.Modality = "ANN"
    for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "StudyDate", "StudyTime"):
        setattr(dataset, keyword, getattr(level, keyword, ""))
    _plant(dataset)
    dataset.ContentLabel = "TUMOUR"
    dataset.ContentCreatorName = PHYSICIAN
    dataset.AnnotationCoordinateType = "2D"
    instance = Dataset()
    instance.ReferencedSOPClassUID = level.SOPClassUID
    instance.ReferencedSOPInstanceUID = level.SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = level.SeriesInstanceUID
    series.ReferencedInstanceSequence = [instance]
    dataset.ReferencedSeriesSequence = [series]
    dataset.ReferencedImageSequence = [instance]
    group = Dataset()
    group.AnnotationGroupNumber = 1
    group.AnnotationGroupUID = pydicom.uid.generate_uid()
    group.AnnotationGroupLabel = f"cells of {NAME}"
    group.AnnotationGroupGenerationType = "MANUAL"
    group.GraphicType = "POINT"
    group.NumberOfAnnotations = 2
    group.PointCoordinatesData = np.array([10.0, 20.0, 30.0, 40.0], np.float32).tobytes()
    dataset.AnnotationGroupSequence = [group]
    return dataset


def _new_object(level: Dataset, sop_class: str, modality: str) -> Dataset:
    """An object of *sop_class* in the study and frame of reference of *level*, planted."""
    dataset = pydicom.dataset.FileDataset(
        "", Dataset(), file_meta=pydicom.dataset.FileMetaDataset()
    )
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset.SOPClassUID = UID(sop_class)
    dataset.SOPInstanceUID = pydicom.uid.generate_uid()
    dataset.SeriesInstanceUID = pydicom.uid.generate_uid()
    dataset.Modality = modality
    dataset.SeriesNumber = 99
    dataset.InstanceNumber = 1
    for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "StudyDate", "StudyTime"):
        setattr(dataset, keyword, getattr(level, keyword, ""))
    dataset.Manufacturer = "wsiarchive tests"
    _plant(dataset)
    dataset.ContentDate, dataset.ContentTime = "20261119", "093000"
    return dataset


def _code(value: str, meaning: str, scheme: str = "DCM") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _report(level: Dataset) -> Dataset:
    """A Comprehensive SR (PS3.3 A.35.3) whose content items name the patient: a PNAME, a
    TEXT and a DATE item (Clean Structured Content, PS3.15 E.3.4)."""
    dataset = _new_object(level, SR_CLASS, "SR")
    dataset.ReferencedPerformedProcedureStepSequence = []
    dataset.PerformedProcedureCodeSequence = []
    dataset.CompletionFlag, dataset.VerificationFlag = "COMPLETE", "UNVERIFIED"
    dataset.ValueType, dataset.ContinuityOfContent = "CONTAINER", "SEPARATE"
    dataset.ConceptNameCodeSequence = [_code("11526-1", "Pathology study", "LN")]
    items = []
    for value_type, concept, attribute, value in (
        ("PNAME", _code("121008", "Person Observer Name"), "PersonName", PHYSICIAN),
        ("TEXT", _code("121071", "Finding"), "TextValue",
         f"Biopsy of {NAME} {PATIENT_ID}: adenocarcinoma, grade 2"),
        ("DATE", _code("111526", "DateTime Started"), "Date", BIRTH),
    ):  # fmt: skip
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", value_type
        item.ConceptNameCodeSequence = [concept]
        setattr(item, attribute, value)
        items.append(item)
    dataset.ContentSequence = items
    return dataset


def _presentation(level: Dataset) -> Dataset:
    """A Grayscale Softcopy Presentation State (PS3.3 A.33.1) with a text object and a
    polyline naming the patient, and an overlay with its comments (Clean Graphics, E.3.3)."""
    dataset = _new_object(level, PR_CLASS, "PR")
    dataset.ContentLabel = "MARKUP"
    dataset.ContentDescription = "measurements"
    dataset.ContentCreatorName = PHYSICIAN
    dataset.PresentationCreationDate, dataset.PresentationCreationTime = "20261119", "093000"
    text = Dataset()
    text.UnformattedTextValue = f"tumour margin of {NAME} {PATIENT_ID}"
    text.BoundingBoxAnnotationUnits = "PIXEL"
    text.BoundingBoxTopLeftHandCorner = [1.0, 1.0]
    text.BoundingBoxBottomRightHandCorner = [60.0, 20.0]
    text.BoundingBoxTextHorizontalJustification = "LEFT"
    graphic = Dataset()
    graphic.GraphicAnnotationUnits = "PIXEL"
    graphic.GraphicDimensions = 2
    graphic.NumberOfGraphicPoints = 2
    graphic.GraphicData = [1.0, 1.0, 10.0, 10.0]
    graphic.GraphicType = "POLYLINE"
    graphic.GraphicFilled = "N"
    annotation = Dataset()
    annotation.GraphicLayer = "LAYER1"
    annotation.TextObjectSequence = [text]
    annotation.GraphicObjectSequence = [graphic]
    dataset.GraphicAnnotationSequence = [annotation]
    layer = Dataset()
    layer.GraphicLayer, layer.GraphicLayerOrder = "LAYER1", 1
    dataset.GraphicLayerSequence = [layer]
    dataset.add_new(0x60000010, "US", 8)  # Overlay Rows
    dataset.add_new(0x60000011, "US", 8)  # Overlay Columns
    dataset.add_new(0x60000040, "CS", "G")  # Overlay Type
    dataset.add_new(0x60000050, "SS", [1, 1])  # Overlay Origin
    dataset.add_new(0x60000100, "US", 1)  # Overlay Bits Allocated
    dataset.add_new(0x60000102, "US", 0)  # Overlay Bit Position
    dataset.add_new(0x60003000, "OW", b"\xff" * 8)  # Overlay Data
    dataset.add_new(0x60004000, "LT", f"drawn over the name {NAME}")  # Overlay Comments
    return dataset


def _export(archive: Stored, name: str, *flags: str) -> Path:
    folder = archive.root / name
    studies = archive.studies
    args = ["export", *studies, "--to", str(folder), "--data-dir", str(archive.data)]
    assert main([*args, *flags]) == 0
    return folder


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.dcm"))


def _elements(dataset: Dataset) -> Iterator[pydicom.DataElement]:
    for element in dataset:
        yield element
        if element.VR == "SQ":
            for item in element.value:
                yield from _elements(item)


def _original_of(archive: Stored, exported: Dataset, project: str) -> Dataset:
    """The original of an exported object, found by reversing its SOP UID in the map."""
    entries = _lookup(archive, str(exported.SOPInstanceUID), project)
    (entry,) = [e for e in entries if e["kind"] == "SOPInstanceUID"]
    path = archive.originals[entry["original"]]
    return pydicom.dcmread(path)


def _lookup(archive: Stored, value: str, project: str) -> list[dict[str, str]]:
    import contextlib
    import io
    import json

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["pseudonyms", value, "--project", project, "--json",
                     "--data-dir", str(archive.data)])  # fmt: skip
    assert code in (0, 1)
    return list(json.loads(buffer.getvalue()))


def test_the_library_table_matches_the_standard_for_what_the_objects_carry() -> None:
    for keyword, expected in TABLE_E11.items():
        tag = int(pydicom.datadict.tag_for_keyword(keyword) or 0)
        assert basic_action(tag) == expected, keyword
    for rows, expected in ((U_ROWS, "U"), (D_ROWS, "D")):
        assert [f"{t:08X}" for t in rows if basic_action(t) != expected] == []
    for (option, keyword), expected in OPTION_E11.items():
        tag = int(pydicom.datadict.tag_for_keyword(keyword) or 0)
        assert action_for(tag, Options(**{option: True})) == expected, (option, keyword)


@pytest.fixture(scope="module")
def basic(archive: Stored) -> Path:
    return _export(archive, "basic")


def test_label_and_burned_in_are_left_out(archive: Stored, basic: Path) -> None:
    exported = [pydicom.dcmread(p, stop_before_pixels=True) for p in _files(basic)]
    types = [list(d.get("ImageType", [])) for d in exported]
    assert all("LABEL" not in t and "OVERVIEW" not in t for t in types)
    assert all(d.get("BurnedInAnnotation") != "YES" for d in exported)
    # everything else is there: the slide less its label, its annotations, the CT and the CR
    assert len(exported) == len(archive.originals) - 2
    asked = _export(archive, "asked", "--include-label", "--include-burned-in", "--project", "b")
    assert len(_files(asked)) == len(archive.originals)


def test_no_identifier_survives_anywhere(archive: Stored, basic: Path) -> None:
    originals = [pydicom.dcmread(p) for p in archive.originals.values()]
    uids = {str(e.value) for d in originals for e in _elements(d) if e.VR == "UI"}
    uids = {u for u in uids if u not in UID_dictionary}  # every UID but the registered ones
    uids |= {str(d.StudyInstanceUID) for d in originals}
    for path in _files(basic):
        raw = path.read_bytes()
        for secret in [*SECRETS, "CompressedSamples", "GENERAL-HOSPITAL"]:
            assert secret.encode() not in raw, (path.name, secret)
            assert secret.upper().encode() not in raw.upper(), (path.name, secret)
        for uid in uids:
            assert uid.encode() not in raw, (path.name, uid)
        dataset = pydicom.dcmread(path)
        for element in _elements(dataset):
            assert not element.tag.is_private, (path.name, element)
            if element.VR not in ("OB", "OW", "UN", "SQ", "OF", "OD"):
                text = str(element.value).upper()
                assert not any(s.upper() in text for s in SECRETS), (path.name, element)
        assert dataset.PatientIdentityRemoved == "YES"
        codes = [item.CodeValue for item in dataset.DeidentificationMethodCodeSequence]
        assert codes == [CID_7050["basic"]]
        assert all(
            i.CodingSchemeDesignator == "DCM" for i in dataset.DeidentificationMethodCodeSequence
        )


def _check(action: str, keyword: str, before: object, after: Dataset, uid_map: dict) -> None:
    present = keyword in after
    value = after.get(keyword)
    empty = present and (value in ("", None) or (hasattr(value, "__len__") and len(value) == 0))
    if action == "X":
        assert not present, keyword
    elif action == "Z":
        assert empty or keyword == "PatientName", keyword
    elif action == "D" and isinstance(before, pydicom.Sequence):
        assert present and empty, keyword  # a sequence's dummy: no items (docs, 16.2)
    elif action == "D":
        assert present and not empty and str(value) != str(before), keyword
    elif action == "U" and isinstance(value, pydicom.Sequence):  # X/Z/U*: kept, UIDs mapped
        assert len(value) == len(before), keyword  # type: ignore[arg-type]
        for old, new in zip(before, value, strict=True):  # type: ignore[call-overload]
            assert new.ReferencedSOPInstanceUID != old.ReferencedSOPInstanceUID, keyword
    elif action == "U":
        assert UID(str(value)).is_valid and str(value) != str(before), keyword
        assert uid_map.setdefault(str(before), str(value)) == str(value), keyword
    elif action == "K":
        assert str(value) == str(before), keyword
    elif action == "C":
        assert present, keyword
    else:
        raise AssertionError(f"{keyword}: {action} is not resolved")


def test_attribute_by_attribute_against_table_e11(archive: Stored, basic: Path) -> None:
    uid_map: dict[str, str] = {}
    checked: set[str] = set()
    for path in _files(basic):
        after = pydicom.dcmread(path, stop_before_pixels=True)
        before = _original_of(archive, after, "default")
        resolved = RESOLVED[str(before.SOPClassUID)]
        for keyword, action in TABLE_E11.items():
            if keyword in before and keyword not in ("PatientID", "PatientName"):
                if "/" in action:
                    action = resolved[keyword]
                _check(action, keyword, before.get(keyword), after, uid_map)
                checked.add(keyword)
        # the patient's pseudonym is the dummy of Patient ID (Z/D) and Name (Z)
        assert after.PatientID == str(after.PatientName) and after.PatientID != PATIENT_ID
        for item_before, item_after in zip(
            before.get("SpecimenDescriptionSequence", []),
            after.get("SpecimenDescriptionSequence", []),
            strict=True,
        ):
            for keyword in ("SpecimenIdentifier", "SpecimenUID", "SpecimenPreparationSequence"):
                _check(TABLE_E11[keyword], keyword, item_before.get(keyword), item_after, uid_map)
    assert {"StudyInstanceUID", "ContainerIdentifier", "DeviceSerialNumber"} <= checked
    assert len(checked) >= 30, sorted(set(TABLE_E11) - checked)


def _text(dataset: Dataset) -> str:
    """Every value of *dataset* and its sequences, as text."""
    return " ".join(
        str(e.value) for e in _elements(dataset) if e.VR not in ("OB", "OW", "UN", "SQ")
    )


def _items_of(dataset: Dataset, keyword: str) -> list[Dataset]:
    return list(dataset.get(keyword) or [])


def _structured(before: Dataset, after: Dataset) -> None:
    """Clean Structured Content: the content items stay, their text cleaned (E.3.4)."""
    if str(before.SOPClassUID) == SR_CLASS:
        items = {i.ValueType: i for i in after.ContentSequence}
        assert set(items) == {"PNAME", "TEXT", "DATE"}
        assert str(items["PNAME"].PersonName) not in ("", PHYSICIAN)  # D: a dummy
        assert items["TEXT"].TextValue.endswith("adenocarcinoma, grade 2")  # C: cleaned
        assert items["DATE"].Date != BIRTH  # D
    for item in _items_of(after, "AcquisitionContextSequence"):
        assert item.TextValue.startswith("Collected from")
    for description in _items_of(after, "SpecimenDescriptionSequence"):
        (step,) = description.SpecimenPreparationSequence
        texts = [i.TextValue for i in step.SpecimenPreparationStepContentItemSequence]
        assert texts == ["ANONYMIZED", "fixed in formalin by Dr"], texts  # all identifier: dummy


def _graphics(before: Dataset, after: Dataset) -> None:
    """Clean Graphics: the graphics stay, their text cleaned; overlay bits cannot be."""
    if str(before.SOPClassUID) != PR_CLASS:
        return
    (annotation,) = after.GraphicAnnotationSequence
    assert annotation.TextObjectSequence[0].UnformattedTextValue == "tumour margin of"
    graphic = annotation.GraphicObjectSequence[0]
    assert list(graphic.GraphicData) == [1.0, 1.0, 10.0, 10.0]
    # Overlay Data: C cannot clean a bitmap, so it is removed, and the overlay with it (its
    # comments, C, too): an overlay plane without its data would break the IOD
    assert not [e for e in after if int(e.tag) >> 16 == 0x6000]


def _safe_private(before: Dataset, after: Dataset) -> None:
    """Retain Safe Private: only what Table E.3.10-1 or the object's declaration makes safe."""
    kept = {int(e.tag): _private_value(e.value) for e in after if e.tag.is_private}
    expected = {
        0x70530010: "Philips PET Private Group", 0x70531000: "1.25", 0x70531009: "0.5",
        0x00150010: "ACME SAFE", 0x00151001: "42", 0x00170010: "ACME MIXED", 0x00171001: "7",
    }  # fmt: skip
    if before.get(0x00250010) and before[0x00250010].value == "GEMS_SERS_01":  # the GE CT's
        expected |= {0x00250010: "GEMS_SERS_01", 0x00251007: "44"}  # Images in Series: safe
    assert kept == expected, kept
    for element in _elements(after):  # nested ones: the specimen's private block is unsafe
        assert not element.tag.is_private or int(element.tag) in kept, element


def _private_value(value: object) -> str:
    """A private value read back as text (an unknown private element reads as UN bytes)."""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    return str(value)


CHECKS = {
    "--retain-institution-identity": lambda b, a: a.InstitutionName == INSTITUTION,
    "--retain-patient-characteristics": lambda b, a: (
        (a.PatientSex, a.PatientAge, a.PatientWeight) == ("F", "063Y", 61)
    ),
    "--retain-full-dates": lambda b, a: (
        a.LongitudinalTemporalInformationModified == "UNMODIFIED" and a.PatientBirthDate == ""
    ),
    "--clean-structured-content": lambda b, a: _structured(b, a) is None,
    "--clean-graphics": lambda b, a: _graphics(b, a) is None,
    "--retain-safe-private": lambda b, a: _safe_private(b, a) is None,
}


@pytest.mark.parametrize("flag", list(COLUMNS))
def test_each_option_attribute_by_attribute(archive: Stored, flag: str) -> None:
    """Each further option alone: every attribute the objects carry has the option's action
    where its column has one and the Basic Profile's elsewhere, no identifier the option does
    not keep survives anywhere, and the method codes say which option it was."""
    project = flag.strip("-")
    folder = _export(archive, project, flag, "--project", project)
    column = COLUMNS[flag]
    secrets = [
        s for s in SECRETS if not (flag == "--retain-institution-identity" and s == INSTITUTION)
    ]
    uid_map: dict[str, str] = {}
    files = _files(folder)
    assert len(files) == len(archive.originals) - 2
    for path in files:
        after = pydicom.dcmread(path, stop_before_pixels=True)
        before = _original_of(archive, after, project)
        resolved = RESOLVED[str(before.SOPClassUID)]
        for keyword in sorted(set(TABLE_E11) | set(column)):
            if keyword not in before or keyword in ("PatientID", "PatientName"):
                continue
            action = column.get(keyword) or TABLE_E11.get(keyword, "K")
            action = resolved.get(keyword, action) if "/" in action else action
            _check(action, keyword, before.get(keyword), after, uid_map)
        assert CHECKS[flag](before, after), (flag, path.name)
        raw = path.read_bytes().upper()
        for secret in secrets:
            assert secret.upper().encode() not in raw, (flag, path.name, secret)
        text = _text(after).upper()
        assert not any(s.upper() in text for s in secrets), (flag, path.name)
        assert [i.CodeValue for i in after.DeidentificationMethodCodeSequence] == [
            CID_7050["basic"],
            CID_7050[flag],
        ]


def test_both_temporal_options_are_refused(archive: Stored) -> None:
    both = ["--retain-full-dates", "--retain-modified-dates"]
    args = ["export", *archive.studies, "--to", str(archive.root / "both"), *both]
    args += ["--data-dir", str(archive.data)]
    assert main(args) != 0 and not (archive.root / "both").exists()


def _iod_errors(path: Path) -> set[str]:
    """dciodvfy's errors for *path* against its IOD, less the values they quote (a value
    changed by the export is not a new error; a missing or invalid attribute is)."""
    tool = Path(sys.executable).with_name("dciodvfy")
    result = subprocess.run([str(tool), str(path)], capture_output=True, text=True, check=False)
    lines = (result.stdout + result.stderr).splitlines()
    quoted = r"= <[^>]*>|<[0-9.]+>"  # a value or a UID, not an attribute's or module's name
    return {re.sub(quoted, "<>", line) for line in lines if line.startswith("Error")}


@pytest.mark.parametrize("flags", [(), tuple(f for f in COLUMNS) + ("--retain-uids",)])
def test_exported_objects_gain_no_iod_errors(archive: Stored, flags: tuple[str, ...]) -> None:
    """dciodvfy finds no error in an exported slide level or radiology object that it does
    not find in the original: Type 1 and 2 attributes the table would remove are kept as a
    dummy or empty (the compound actions by the IOD). With the options, the annotations, the
    SR and the presentation state too (the Basic Profile alone empties their Content and
    Graphic Annotation Sequences, D, and removes a presentation's creation date, X)."""
    folder = _export(archive, f"dciodvfy{len(flags)}", *flags, "--project", f"v{len(flags)}")
    classes = {WSI_CLASS, CT_CLASS, MR_CLASS, CR_CLASS}
    if flags:
        classes |= {ANN_CLASS, SR_CLASS, PR_CLASS}
    checked = 0
    for path in _files(folder):
        raw = path.read_bytes().upper()  # every option at once leaks nothing either
        leaked = [s for s in SECRETS if s != INSTITUTION and s.upper().encode() in raw]
        assert not leaked, (path.name, leaked)
        after = pydicom.dcmread(path, stop_before_pixels=True)
        if str(after.SOPClassUID) not in classes:
            continue
        before = archive.originals[_lookup_original(archive, after, f"v{len(flags)}")]
        new = _iod_errors(path) - _iod_errors(before)
        assert not new, (after.Modality, path.name, sorted(new))
        checked += 1
    assert checked >= 6


def _lookup_original(archive: Stored, exported: Dataset, project: str) -> str:
    entries = _lookup(archive, str(exported.SOPInstanceUID), project)
    (entry,) = [e for e in entries if e["kind"] == "SOPInstanceUID"]
    return str(entry["original"])


def test_pixels_are_the_originals(archive: Stored, basic: Path) -> None:
    for path in _files(basic):
        after = pydicom.dcmread(path)
        before = _original_of(archive, after, "default")
        assert ("PixelData" in after) == ("PixelData" in before)
        if "PixelData" not in before:  # the annotations
            continue
        assert after.PixelData == before.PixelData
        if after.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50":
            assert np.array_equal(after.pixel_array, before.pixel_array)


def test_uids_stay_consistent_so_the_pyramid_opens(archive: Stored, basic: Path) -> None:
    from wsidicom import WsiDicom

    exported = {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in _files(basic)
    }
    slides = [p.parent for p in exported.values() if pydicom.dcmread(p).Modality == "SM"]
    (series,) = set(slides)
    original_folder = archive.root / "original-slide"
    original_folder.mkdir(exist_ok=True)
    for path in archive.originals.values():
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        if dataset.Modality == "SM" and "LABEL" not in dataset.ImageType:
            (original_folder / path.name).write_bytes(path.read_bytes())
    with WsiDicom.open(series) as after, WsiDicom.open(original_folder) as before:
        assert len(after.levels) == len(before.levels) > 3
        for level in range(len(before.levels)):
            size = before.levels[level].size
            region = (min(256, size.width), min(256, size.height))
            a = np.asarray(after.read_region((0, 0), level, region))
            b = np.asarray(before.read_region((0, 0), level, region))
            assert np.array_equal(a, b)
    # the reference of one level to another is X/Z/U* and Type 3 in the WSI IOD: removed (the
    # annotations' Type 1C one stays and maps: test_annotations_still_reference_their_slide)
    source, _ = archive.reference
    new = {e["original"]: e["pseudonym"] for e in _lookup(archive, source, "default")}
    referring = pydicom.dcmread(exported[new[source]], stop_before_pixels=True)
    assert "ReferencedImageSequence" not in referring


def test_the_pseudonym_map_reverses_and_is_stable(archive: Stored, basic: Path) -> None:
    (entry,) = [e for e in _lookup(archive, PATIENT_ID, "default") if e["kind"] == "PatientID"]
    pseudonym = entry["pseudonym"]
    back = _lookup(archive, pseudonym, "default")
    assert {(e["kind"], e["original"]) for e in back} >= {("PatientID", PATIENT_ID)}
    exported = {
        str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in _files(basic)
    }
    for study in archive.studies:
        if not _lookup(archive, study, "default"):  # only burned-in instances: not exported
            continue
        (mapped,) = [
            e for e in _lookup(archive, study, "default") if e["kind"] == "StudyInstanceUID"
        ]
        assert _lookup(archive, mapped["pseudonym"], "default")[0]["original"] == study
        exported.remove(mapped["pseudonym"])
    assert not exported  # every exported study is in the map
    again = _export(archive, "again")  # the same project: the same pseudonyms and UIDs
    assert [p.relative_to(again) for p in _files(again)] == [
        p.relative_to(basic) for p in _files(basic)
    ]
    other = _export(archive, "other", "--project", "second-opinion")
    assert not {p.name for p in _files(other)} & {p.name for p in _files(basic)}
    patients = {pydicom.dcmread(p, stop_before_pixels=True).PatientID for p in _files(other)}
    assert pseudonym not in patients


def test_options(archive: Stored, basic: Path) -> None:
    folder = _export(
        archive, "options", "--project", "opts", "--retain-uids", "--retain-device-identity",
        "--clean-descriptors", "--retain-modified-dates",
    )  # fmt: skip
    originals = archive.originals
    for path in _files(folder):
        after = pydicom.dcmread(path, stop_before_pixels=True)
        before = pydicom.dcmread(originals[str(after.SOPInstanceUID)])
        assert after.StudyInstanceUID == before.StudyInstanceUID  # Retain UIDs: K
        assert after.DeviceSerialNumber == SERIAL and after.StationName == STATION  # Dev. Id.
        assert after.SeriesDescription == "H&E stain"  # nothing to clean: kept
        assert "biopsy" in after.StudyDescription.lower()
        assert not re.search(f"{NAME}|{PATIENT_ID}", after.StudyDescription + after.ImageComments)
        shift = _days(before.StudyDate) - _days(after.StudyDate)
        assert 365 <= shift <= 3650 and _days(before.SeriesDate) - _days(after.SeriesDate) == shift
        assert after.LongitudinalTemporalInformationModified == "MODIFIED"
        assert [i.CodeValue for i in after.DeidentificationMethodCodeSequence] == [
            CID_7050[k]
            for k in ("basic", "retain_uids", "retain_device_identity", "clean_descriptors",
                      "retain_modified_dates")
        ]  # fmt: skip
        assert after.PatientID != PATIENT_ID and BIRTH not in str(after)


def _days(value: str) -> int:
    from datetime import date

    return date(int(value[:4]), int(value[4:6]), int(value[6:8])).toordinal()


def test_annotations_still_reference_their_slide(archive: Stored, basic: Path) -> None:
    exported = [pydicom.dcmread(p, stop_before_pixels=True) for p in _files(basic)]
    (ann,) = [d for d in exported if d.Modality == "ANN"]
    new = {e["original"]: e["pseudonym"] for e in _lookup(archive, archive.reference[1], "default")}
    (level,) = [d for d in exported if str(d.SOPInstanceUID) == new[archive.reference[1]]]
    assert ann.StudyInstanceUID == level.StudyInstanceUID
    assert ann.FrameOfReferenceUID == level.FrameOfReferenceUID
    (series,) = ann.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == level.SeriesInstanceUID
    assert series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == level.SOPInstanceUID
    assert ann.ReferencedImageSequence[0].ReferencedSOPInstanceUID == level.SOPInstanceUID
    (group,) = ann.AnnotationGroupSequence
    original = _original_of(archive, ann, "default").AnnotationGroupSequence[0]
    assert group.AnnotationGroupUID != original.AnnotationGroupUID  # D: a new UID
    assert NAME not in str(group.get("AnnotationGroupLabel", ""))  # D: a dummy
    assert group.PointCoordinatesData == original.PointCoordinatesData  # not in the table: K


def test_an_unknown_study_writes_nothing(
    archive: Stored, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = archive.root / "unknown"
    args = ["export", archive.studies[0], "1.2.3.4.5.6.7", "--to", str(folder)]
    assert main([*args, "--data-dir", str(archive.data)]) == 1
    assert "error:" in capsys.readouterr().err and not folder.exists()


def test_export_to_another_archive_by_stow(archive: Stored, basic: Path, fresh_server) -> None:
    import requests

    destination = fresh_server()
    args = ["export", *archive.studies, "--stow", destination.url]
    assert main([*args, "--data-dir", str(archive.data)]) == 0
    found = requests.get(f"{destination.url}/studies", timeout=30).json()
    sent = {d["0020000D"]["Value"][0]: d for d in found}
    written = [pydicom.dcmread(p, stop_before_pixels=True) for p in _files(basic)]
    assert set(sent) == {str(d.StudyInstanceUID) for d in written}
    for study in sent.values():
        assert study["00100020"]["Value"][0].startswith("P")  # the pseudonym
    count = sum(int(d["00201208"]["Value"][0]) for d in sent.values())
    assert count == len(written)
    dataset = written[0]
    url = f"{destination.url}/studies/{dataset.StudyInstanceUID}/series/"
    url += f"{dataset.SeriesInstanceUID}/instances/{dataset.SOPInstanceUID}"
    body = requests.get(
        url, headers={"Accept": 'multipart/related; type="application/dicom"'}, timeout=30
    )
    assert body.status_code == 200 and NAME.encode() not in body.content
    assert dataset.SOPInstanceUID.encode() in body.content


def test_every_option_row_is_a_row_of_the_table() -> None:
    """The option columns written in storage/deid/table.py name only attributes the Basic
    Profile column lists (a mistyped tag would be a row the standard does not have)."""
    from storage.deid import table

    for rows in (
        table.DEVICE_KEEP, table.DEVICE_CLEAN, table.DESCRIPTORS, table.UID_KEEP_OTHER,
        table.INSTITUTION_KEEP, table.PATIENT_KEEP, table.PATIENT_CLEAN, table.STRUCTURED_CLEAN,
        table.GRAPHICS_CLEAN,
    ):  # fmt: skip
        missing = [f"{tag:08X}" for tag in rows if basic_action(tag) is None]
        assert not missing
