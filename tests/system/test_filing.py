"""Slides that file themselves (issue 13): a scanner's file with no typed metadata converts,
its label's barcodes name the slide and its case, it joins the case's study, and a search
finds the slides still lacking the WG-26 specimen facts."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import pydicom
import pytest
import requests

from converter import ConversionError, ConversionOptions, SlideInfo, convert
from converter.label import read_barcodes
from tests.labelled import label_image, write_svs
from tests.servers import ArchiveServer
from tests.system.test_converter import dciodvfy_errors

SOURCE = "svs/CMU-1-Small-Region.svs"  # a real Aperio slide: the pyramid's pixels
CASE = "S26-04711"
PATTERN = r"^(?P<accession>S\d{2}-\d+)"
CR = "radiology/fodicom_CR-MONO1-10-chest.nopreamble"
PROFILE_FACTS = [
    "Error - Empty attribute (no value) Type 1 Required Element=<SpecimenPreparationSequence>"
    " Module=<WG26SP2025WSI>",
    "Error - Missing attribute Type 1 Required Element=<PrimaryAnatomicStructureSequence>"
    " Module=<PrimaryAnatomicStructureMandatoryMacro>",
]


def labelled(testdata: Path, path: Path, slide: str | None) -> Path:
    """An SVS whose label carries *slide* as a DataMatrix and as a Code 128 (or no barcode)."""
    codes = [(slide, "DataMatrix"), (slide, "Code128")] if slide else []
    return write_svs(path, testdata / SOURCE, label_image(*codes))


def wsiarchive(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsiarchive", *args], capture_output=True, text=True, timeout=600
    )


def read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True)


def value(dataset: dict, tag: str) -> object:
    found = (dataset.get(tag) or {}).get("Value") or [None]
    return found[0]


def test_the_label_names_the_slide_and_typed_metadata_wins(testdata: Path, tmp_path: Path):
    slide = labelled(testdata, tmp_path / "scan_0001.svs", f"{CASE}-A1")
    # The label as the converter sees it, independently of it: both symbols decode.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from wsidicomizer import WsiDicomizer

        with WsiDicomizer.open(slide) as wsi:
            found = read_barcodes(wsi.read_label())
    assert [(b.format, b.text) for b in found] == [
        ("Data Matrix", f"{CASE}-A1"),
        ("Code 128", f"{CASE}-A1"),
    ]
    warned: list[str] = []
    options = ConversionOptions(
        workers=2, barcode_accession_pattern=re.compile(PATTERN), warn=warned.append
    )
    files = convert(slide, tmp_path / "out", SlideInfo(), options)
    assert len(warned) == 1
    assert "anatomy" in warned[0] and "preparation step" in warned[0]
    datasets = [read(f) for f in files]
    assert {d.ContainerIdentifier for d in datasets} == {f"{CASE}-A1"}
    assert {d.AccessionNumber for d in datasets} == {CASE}
    assert {d.ImageType[2] for d in datasets} >= {"VOLUME", "LABEL", "OVERVIEW"}
    for dataset, file in zip(datasets, files, strict=True):
        specimen = dataset.SpecimenDescriptionSequence[0]
        assert specimen.SpecimenIdentifier == f"{CASE}-A1"
        assert "PrimaryAnatomicStructureSequence" not in specimen  # Type 3: absent
        assert len(specimen.SpecimenPreparationSequence) == 0  # Type 2: empty
        # A valid WSI IOD (PS3.3 A.32.8); the WG-26 profile names exactly the facts missing.
        assert dciodvfy_errors(file, profile=None) == [], file.name
        assert dciodvfy_errors(file) == PROFILE_FACTS, file.name
    # Typed metadata wins over the barcode; what it leaves out still comes from the label.
    typed = convert(slide, tmp_path / "typed", SlideInfo(container_identifier="TYPED-1"), options)
    assert {(read(f).ContainerIdentifier, read(f).AccessionNumber) for f in typed} == {
        ("TYPED-1", CASE)
    }
    # Given every fact, there is no warning and the WG-26 profile has nothing to say.
    warned.clear()
    complete = SlideInfo(
        anatomy="SCT:39607008:Lung structure", stains=["hematoxylin stain"], fixative="Formalin"
    )
    full = convert(slide, tmp_path / "full", complete, options)
    assert warned == []
    assert all(dciodvfy_errors(f) == [] for f in full)


def test_a_labelled_slide_files_itself_into_its_case(testdata: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    # The case is in the archive already: a CR with its accession number and patient.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cr = pydicom.dcmread(testdata / CR, force=True)
    cr.AccessionNumber, cr.PatientID, cr.PatientName = CASE, "P-4711", "Doe^Jane"
    cr.save_as(tmp_path / "cr.dcm", enforce_file_format=True)
    stored = wsiarchive("import", "--data-dir", str(data), str(tmp_path / "cr.dcm"))
    assert stored.returncode == 0, stored.stderr
    slide = labelled(testdata, tmp_path / "scan_0001.svs", f"{CASE}-A1")
    result = wsiarchive(
        "import", "--data-dir", str(data), "--barcode-accession-pattern", PATTERN, str(slide)
    )
    assert result.returncode == 0, result.stderr
    assert "warning: scan_0001.svs: WG-26 specimen facts missing" in result.stdout
    assert "the anatomy of the specimen" in result.stdout
    # A second slide of the case, through the job queue (the worker's path).
    second = labelled(testdata, tmp_path / "scan_0002.svs", f"{CASE}-B1")
    submitted = wsiarchive(
        "submit",
        "--data-dir",
        str(data),
        "--job-queue",
        "inprocess",
        "--barcode-accession-pattern",
        PATTERN,
        str(second),
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert " done " in submitted.stdout
    # A slide with no barcode on its label: named by its file; no case to join.
    plain = labelled(testdata, tmp_path / "SL-0099.svs", None)
    unnamed = wsiarchive(
        "import", "--data-dir", str(data), "--barcode-accession-pattern", PATTERN, str(plain)
    )
    assert unnamed.returncode == 0, unnamed.stderr
    server = ArchiveServer(data).start()
    try:
        studies = requests.get(server.url + "/studies", params={"AccessionNumber": CASE}).json()
        assert len(studies) == 1  # the slides joined the CR's study
        study = studies[0]
        assert value(study, "00100020") == "P-4711"  # the study's patient, not an empty one
        modalities = study["00080061"]["Value"]
        assert sorted(modalities) == ["CR", "SM"]
        uid = value(study, "0020000D")
        for container in (f"{CASE}-A1", f"{CASE}-B1"):
            slides = requests.get(
                server.url + "/instances",
                params={"ContainerIdentifier": container, "includefield": "PatientID"},
            ).json()
            assert slides, container
            assert {value(s, "0020000D") for s in slides} == {uid}
            assert {value(s, "00100020") for s in slides} == {"P-4711"}
        named = requests.get(
            server.url + "/instances", params={"ContainerIdentifier": "SL-0099"}
        ).json()
        assert named and {value(s, "0020000D") for s in named} != {uid}
        # The marker: every slide lacks the facts, the CR is no slide and is never listed.
        lacking = requests.get(
            server.url + "/instances", params={"missingspecimenfacts": "true"}
        ).json()
        every = requests.get(server.url + "/instances", params={"Modality": "SM"}).json()
        assert {value(i, "00080018") for i in lacking} == {value(i, "00080018") for i in every}
        assert all(value(i, "00080016") != cr.SOPClassUID for i in lacking)
        lacking_studies = requests.get(
            server.url + "/studies", params={"missingspecimenfacts": "true"}
        ).json()
        assert uid in {value(s, "0020000D") for s in lacking_studies}
        assert len(lacking_studies) == 2  # the case and SL-0099's own study
        within = requests.get(
            server.url + "/studies",
            params={"missingspecimenfacts": "true", "AccessionNumber": CASE},
        ).json()
        assert len(within) == 1
        bad = requests.get(server.url + "/instances", params={"missingspecimenfacts": "yes"})
        assert bad.status_code == 400
    finally:
        server.stop()


def test_a_complete_slide_is_not_marked(testdata: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    slide = labelled(testdata, tmp_path / "scan_0003.svs", "S26-00001-A1")
    result = wsiarchive(
        "import",
        "--data-dir",
        str(data),
        "--anatomy",
        "SCT:39607008:Lung structure",
        "--stain",
        "hematoxylin stain",
        str(slide),
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stdout + result.stderr
    server = ArchiveServer(data).start()
    try:
        every = requests.get(
            server.url + "/instances", params={"includefield": "ContainerIdentifier"}
        ).json()
        assert every and {value(i, "00400512") for i in every} == {"S26-00001-A1"}
        lacking = requests.get(
            server.url + "/instances", params={"missingspecimenfacts": "true"}
        ).json()
        assert lacking == []
    finally:
        server.stop()


def test_strict_setting_refuses(testdata: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    slide = labelled(testdata, tmp_path / "scan_0004.svs", f"{CASE}-C1")
    result = wsiarchive(
        "import", "--data-dir", str(data), "--require-specimen-metadata", str(slide)
    )
    assert result.returncode == 1
    assert "missing mandatory metadata (require_specimen_metadata is on)" in result.stderr
    assert "the anatomy of the specimen" in result.stderr
    assert "a specimen preparation step" in result.stderr
    assert "0 slides converted" in result.stdout
    with pytest.raises(ConversionError, match="require_specimen_metadata"):
        convert(
            slide, tmp_path / "out", SlideInfo(), ConversionOptions(require_specimen_metadata=True)
        )
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    # A pattern without its named group is refused before anything is converted.
    refused = wsiarchive(
        "import", "--data-dir", str(data), "--barcode-accession-pattern", "S\\d+", str(slide)
    )
    assert refused.returncode == 2
    assert "(?P<accession>...)" in refused.stderr


def test_barcodes_2d_first_and_the_precedence_of_values() -> None:
    """A QR code below a Code 128 is still the slide identifier (2D symbols first); the
    pattern's group may come from any barcode; typed values are never replaced."""
    from converter.label import accession_pattern, identify

    found = read_barcodes(label_image(("S26-00777", "Code128"), ("S26-00777-B2 HE", "QRCode")))
    assert [(b.format, b.text) for b in found] == [
        ("QR Code", "S26-00777-B2 HE"),
        ("Code 128", "S26-00777"),
    ]
    case = accession_pattern(r"^(?P<accession>S\d{2}-\d+)$")  # only the Code 128 matches
    info, notes = identify(SlideInfo(), found, Path("x/scan.svs"), case)
    assert (info.container_identifier, info.accession_number) == ("S26-00777-B2 HE", "S26-00777")
    assert len(notes) == 2 and "Code 128" in notes[1]
    typed = SlideInfo(container_identifier="T-1", accession_number="T-ACC")
    assert identify(typed, found, Path("scan.svs"), case) == (typed, [])
    fallback, _ = identify(SlideInfo(), [], Path("x/scan 7.svs"), case)
    assert (fallback.container_identifier, fallback.accession_number) == ("scan 7", "")
    with pytest.raises(ValueError, match="no regular expression"):
        accession_pattern("(?P<accession>")


def test_watch_sidecar_wins_over_the_label(testdata: Path, tmp_path: Path) -> None:
    """A drop folder's sidecar names the slide; the label still gives the accession number."""
    drop, data = tmp_path / "drop", tmp_path / "data"
    drop.mkdir()
    labelled(testdata, drop / "scan_0005.svs", f"{CASE}-D1")
    (drop / "scan_0005.json").write_text('{"container_identifier": "SIDECAR-1"}')
    result = wsiarchive(
        "watch",
        str(drop),
        "--data-dir",
        str(data),
        "--barcode-accession-pattern",
        PATTERN,
        "--watch-settle-seconds",
        "0.3",
        "--interval",
        "0.2",
        "--once",
    )
    assert result.returncode == 0, result.stderr
    assert (drop / "done" / "scan_0005.svs").exists()
    assert "WG-26 specimen facts missing" in result.stderr  # logged as a warning
    server = ArchiveServer(data).start()
    try:
        found = requests.get(
            server.url + "/instances",
            params={"ContainerIdentifier": "SIDECAR-1", "includefield": "AccessionNumber"},
        ).json()
        assert found and {value(i, "00080050") for i in found} == {CASE}
        by_barcode = requests.get(
            server.url + "/instances", params={"ContainerIdentifier": f"{CASE}-D1"}
        ).json()
        assert by_barcode == []
    finally:
        server.stop()
