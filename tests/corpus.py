"""A search corpus built by the tests: accented names in two character sets, dates and times
either side of midnight, many modalities, literal '%' and '_', sequences and specimens."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SM = "1.2.840.10008.5.1.4.1.1.77.1.6"
SR = "1.2.840.10008.5.1.4.1.1.88.33"
ANN = "1.2.840.10008.5.1.4.1.1.91.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
SEG = "1.2.840.10008.5.1.4.1.1.66.4"
PR = "1.2.840.10008.5.1.4.1.1.11.1"
OT = "1.2.840.10008.5.1.4.1.1.7"


@dataclass
class StudySpec:
    name: str
    patient_id: str
    charset: str
    date: str
    time: str
    accession: str
    series: list[tuple[str, str, int]]  # (modality, SOP class, number of instances)
    birth_date: str = ""
    sex: str = ""
    description: str = ""
    referring: str = ""
    request: list[tuple[str, str]] = field(default_factory=list)  # (SPS ID, RP ID)
    uid: str = field(default_factory=generate_uid)


STUDIES = {
    "A": StudySpec(
        "Müller^Jürgen",
        "P1",
        "ISO_IR 100",
        "20201231",
        "233000",
        "ACC1",
        [("SM", SM, 3), ("SM", SM, 1), ("ANN", ANN, 1)],
        "19700101",
        "M",
        "Skin biopsy",
        "Doe^John",
    ),
    "B": StudySpec(
        "Müller^Anna",
        "P2",
        "ISO_IR 192",
        "20210101",
        "003000",
        "ACC2",
        [("SM", SM, 2), ("SR", SR, 1)],
        "19800202",
        "F",
        "Liver core",
    ),
    "C": StudySpec(
        "O'Brien^Seán",
        "P3",
        "ISO_IR 100",
        "20210101",
        "120000",
        "ACC3",
        [("CT", CT, 2), ("SEG", SEG, 1)],
        "",
        "",
        "Chest CT",
    ),
    "D": StudySpec(
        "Smith^John",
        "P%1_x",
        "",
        "20210102",
        "090000",
        "ACC4",
        [("PR", PR, 1), ("OT", OT, 1)],
        "19900303",
        "M",
        "",
        request=[("SPS1", "RP1")],
    ),
    "E": StudySpec("smith^jo", "P5", "", "20191231", "101500", "ACC5", [("SM", SM, 1)]),
}


def instances() -> list[Dataset]:
    """Every instance of the corpus as a dataset ready to store."""
    out = []
    for letter, spec in STUDIES.items():
        for series_number, (modality, sop_class, count) in enumerate(spec.series, start=1):
            series_uid = generate_uid()
            for number in range(1, count + 1):
                out.append(
                    _instance(letter, spec, series_uid, series_number, modality, sop_class, number)
                )
    return out


def _instance(
    letter: str,
    spec: StudySpec,
    series_uid: str,
    series_number: int,
    modality: str,
    sop_class: str,
    number: int,
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    if spec.charset:
        ds.SpecificCharacterSet = spec.charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = spec.uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = spec.name
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = spec.birth_date
    ds.PatientSex = spec.sex
    ds.StudyDate = spec.date
    ds.StudyTime = spec.time
    ds.AccessionNumber = spec.accession
    ds.StudyID = f"S-{letter}"
    ds.StudyDescription = spec.description
    ds.ReferringPhysicianName = spec.referring
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"{modality} series {series_number} of {letter}"
    ds.InstanceNumber = number
    ds.PerformedProcedureStepStartDate = spec.date
    ds.PerformedProcedureStepStartTime = spec.time
    if spec.request:
        items = []
        for sps, rp in spec.request:
            item = Dataset()
            item.ScheduledProcedureStepID = sps
            item.RequestedProcedureID = rp
            items.append(item)
        ds.RequestAttributesSequence = Sequence(items)
    if modality == "SM":
        ds.ContainerIdentifier = f"SLIDE-{letter}{series_number}"
        specimen = Dataset()
        specimen.SpecimenIdentifier = f"SPEC-{letter}"
        specimen.SpecimenUID = generate_uid()
        ds.SpecimenDescriptionSequence = Sequence([specimen])
        ds.AcquisitionDateTime = f"{spec.date}{spec.time}"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME" if number > 1 else "LABEL", "NONE"]
        ds.Rows = ds.Columns = 2
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.NumberOfFrames = 1
        ds.PixelData = bytes([number, 2, 3, 4])
    return ds
