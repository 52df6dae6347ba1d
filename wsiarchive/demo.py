"""The demo study: on an empty archive, a slide beside a CR chest X-ray of one fictitious
patient, made from the shared test data, so a newcomer's browser shows both at once.

It goes through the core's one ingest, as `wsiarchive import` does: the slide is converted
into a workspace of the staging area and stored with the rewritten X-ray in one transaction,
the X-ray first. The X-ray's SOP Instance UID is fixed, so the index's uniqueness makes the
load happen once: a second server loading at the same time finds the instance claimed or
stored and gives up, and a restart finds the archive not empty. The demo is made with the
duplicate policy ``reject`` whatever the archive's own, so it can never overwrite anything.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ImplicitVRLittleEndian

from storage import Archive, open_archive
from storage.access import local_admin
from storage.config import DuplicatePolicy
from storage.dicom.levels import Level
from storage.errors import ArchiveError, DuplicateInstance, InstanceBusy
from storage.query.search import Search
from wsiarchive.settings import Settings, configure_logging

if TYPE_CHECKING:
    from converter import ConversionOptions, SlideInfo

log = logging.getLogger(__name__)

CHECKOUT = Path(__file__).resolve().parent.parent
TESTDATA_VARIABLE = "WSIARCHIVE_TESTDATA"  # the tests' variable, not a setting
SLIDE = Path("svs/CMU-1-Small-Region.svs")  # OpenSlide's CMU-1 region, H&E, with label and macro
XRAY = Path("radiology/fodicom_CR-MONO1-10-chest.nopreamble")  # fo-dicom's CR, no preamble
PATIENT_NAME = "Demo^Patient"
PATIENT_ID = "DEMO-0001"
ACCESSION_NUMBER = "DEMO-0001"
STUDY_DESCRIPTION = "Demo: slide next to X-ray"
SLIDE_DESCRIPTION = "Demo: H&E slide (OpenSlide test data CMU-1-Small-Region)"
XRAY_DESCRIPTION = "Demo: CR chest X-ray (fo-dicom test data CR-MONO1-10-chest)"
NOTE = "Demo data of wsiarchive, not a real patient"
_UID_ROOT = "wsiarchive demo study 1"  # the seed of the demo's fixed UIDs


def demo_uid(name: str) -> str:
    """A fixed UID of the demo, the same on every machine: 2.25 and a name-based UUID
    (PS3.5 B.2, ITU-T X.667 version 5)."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'{_UID_ROOT}: {name}').int}"


STUDY_UID = demo_uid("study")
SLIDE_SERIES_UID = demo_uid("slide series")
XRAY_SERIES_UID = demo_uid("x-ray series")
XRAY_INSTANCE_UID = demo_uid("x-ray instance")


class Result(StrEnum):
    """What loading the demo study did."""

    LOADED = "loaded"
    NOT_EMPTY = "not empty"  # the archive holds a study: nothing loaded
    LOADED_ELSEWHERE = "loaded by another server"  # at the same time: nothing loaded here


@dataclass(frozen=True)
class Sources:
    """The two test files the demo is made from."""

    slide: Path
    xray: Path


def testdata_folder(settings: Settings) -> Path:
    """demo_data, else $WSIARCHIVE_TESTDATA, else ../shared/testdata beside the checkout."""
    if settings.demo_data:
        return Path(settings.demo_data)
    if os.environ.get(TESTDATA_VARIABLE):
        return Path(os.environ[TESTDATA_VARIABLE])
    return CHECKOUT.parent / "shared" / "testdata"


def sources(settings: Settings) -> Sources | None:
    """The demo's test files, or None (and a warning naming what is missing)."""
    folder = testdata_folder(settings)
    found = Sources(folder / SLIDE, folder / XRAY)
    missing = [str(path) for path in (found.slide, found.xray) if not path.is_file()]
    if missing:
        log.warning(
            "demo study not loaded: test data missing (%s); set demo_data or %s to the "
            "shared test data, or turn demo_study off. Serving the empty archive.",
            ", ".join(missing),
            TESTDATA_VARIABLE,
        )
        return None
    return found


def is_empty(archive: Archive) -> bool:
    """True when no study is stored (any access group)."""
    search = Search(Level.STUDY, levels={Level.STUDY}, limit=1)
    page = archive.search(search, who=local_admin("demo"))
    return not page.results


def xray_dataset(source: Path, date: str) -> Dataset:
    """The CR rewritten into the demo: the demo patient and study, new UIDs (the original's
    are not reused for what is no longer it), DICOM values for its ACR-NEMA style ones, no
    group lengths, and File Meta for the Part-10 file; the pixels untouched."""
    dataset = pydicom.dcmread(source, force=True)  # a bare data set: no preamble, no meta
    for element in list(dataset):
        if element.tag.element == 0 and element.tag.group != 0x0002:
            del dataset[element.tag]  # retired group lengths (PS3.5 7.2), wrong once edited
    original = str(dataset.SOPInstanceUID)
    # ACR-NEMA values as DICOM wants them (checked with dciodvfy): ImageType "ORIGINAL
    # PRIMARY" is two values, and a 1:1 aspect ratio is said by its absence (PS3.3 C.7.6.3).
    dataset.ImageType = str(dataset.get("ImageType", "ORIGINAL PRIMARY")).split()
    if "PixelAspectRatio" in dataset:
        del dataset.PixelAspectRatio
    dataset.PatientOrientation = ""
    for keyword in ("InstanceCreationDate", "AcquisitionDate"):
        if keyword in dataset:
            setattr(dataset, keyword, str(getattr(dataset, keyword)).replace(".", ""))
    for keyword in ("InstanceCreationTime", "AcquisitionTime"):
        if keyword in dataset:
            setattr(dataset, keyword, str(getattr(dataset, keyword)).replace(":", ""))
    dataset.PatientName = PATIENT_NAME
    dataset.PatientID = PATIENT_ID
    dataset.PatientBirthDate = ""
    dataset.PatientSex = ""
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = "wsiarchive demo: patient replaced, new UIDs"
    dataset.PatientComments = NOTE
    dataset.StudyInstanceUID = STUDY_UID
    dataset.StudyDate = dataset.SeriesDate = dataset.ContentDate = date
    dataset.StudyTime = dataset.SeriesTime = dataset.ContentTime = "000000"
    dataset.StudyID = "DEMO"
    dataset.AccessionNumber = ACCESSION_NUMBER
    dataset.ReferringPhysicianName = ""
    dataset.StudyDescription = STUDY_DESCRIPTION
    dataset.SeriesInstanceUID = XRAY_SERIES_UID
    dataset.SeriesNumber = 2
    dataset.SeriesDescription = XRAY_DESCRIPTION
    dataset.SOPInstanceUID = XRAY_INSTANCE_UID
    dataset.InstanceNumber = 1
    dataset.ImageComments = f"{NOTE}: fo-dicom's CR-MONO1-10-chest (SOP Instance {original})"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = UID(XRAY_INSTANCE_UID)
    meta.TransferSyntaxUID = ImplicitVRLittleEndian  # as the source is encoded
    dataset.file_meta = meta
    return dataset


def slide_info(date: str) -> SlideInfo:
    """The slide's metadata: the demo patient and study, and demo values for what the
    converter requires (docs/converter.md: slide id, anatomy, preparation)."""
    from converter import SlideInfo

    return SlideInfo(
        patient_name=PATIENT_NAME,
        patient_id=PATIENT_ID,
        study_uid=STUDY_UID,
        accession_number=ACCESSION_NUMBER,
        study_id="DEMO",
        study_date=date,
        study_time="000000",
        study_description=STUDY_DESCRIPTION,
        series_uid=SLIDE_SERIES_UID,
        series_number=1,
        series_description=SLIDE_DESCRIPTION,
        container_identifier="DEMO-SLIDE-1",
        anatomy="SCT:39607008:Lung structure",  # a demo value, to go with the chest X-ray
        stains=["hematoxylin stain", "water soluble eosin stain"],
        fixative="Formalin",
        embedding="Paraffin wax",
    )


def load(archive: Archive, found: Sources, settings: Settings) -> Result:
    """Convert the slide and store it with the X-ray, once (see the module's docstring)."""
    from wsiarchive.options import conversion_options

    who = local_admin("serve --demo-study")
    if not is_empty(archive):
        return Result.NOT_EMPTY
    date = datetime.now(UTC).strftime("%Y%m%d")
    workspace = archive.workspace()
    try:
        xray = workspace / "x-ray.dcm"
        xray_dataset(found.xray, date).save_as(xray, enforce_file_format=True)
        options = conversion_options(settings, interactive=False)
        slide = convert_slide(found.slide, workspace / "slide", date, options)
        try:
            stored = archive.ingest_staged_files([xray, *slide], who=who)
        except (InstanceBusy, DuplicateInstance):
            return Result.LOADED_ELSEWHERE
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    log.warning(
        "demo study loaded (demo data, not a real patient): patient %s %s, study %s: the "
        "slide %s as %d instances and the X-ray %s (off: demo_study = false, --no-demo-study)",
        PATIENT_ID,
        PATIENT_NAME,
        STUDY_UID,
        found.slide,
        len(stored) - 1,
        found.xray,
    )
    return Result.LOADED


def convert_slide(path: Path, output: Path, date: str, options: ConversionOptions) -> list[Path]:
    """The slide converted into *output*: its files."""
    from converter import convert

    return convert(path, output, slide_info(date), options)


def _load_in_process(settings: Settings, found: Sources, started: float) -> None:
    """The demo's own process: the converter's process-wide corrections stay out of serve.
    *started*: when serve found the archive empty (time.time())."""
    configure_logging(settings)
    try:
        archive = open_archive(replace(settings, duplicate_policy=DuplicatePolicy.REJECT))
        try:
            result = load(archive, found, settings)
        finally:
            archive.close()
    except Exception as exc:  # noqa: BLE001 (fail soft: the archive is served without it)
        log.warning(
            "demo study not loaded: %s: %s; serving without it",
            type(exc).__name__,
            exc,
            exc_info=True,
        )
        return
    if result is Result.LOADED:
        log.info(
            "demo study stored %.1f s after serve found the archive empty", time.time() - started
        )
    elif result is Result.LOADED_ELSEWHERE:
        log.warning("demo study not loaded here: another server loaded it at the same time")
    elif result is Result.NOT_EMPTY:
        log.info("demo study not loaded: the archive holds studies already")


def start(settings: Settings) -> multiprocessing.process.BaseProcess | None:
    """At serve's start: when demo_study is on and the archive is empty, load the demo study
    in a process of its own while the server starts listening (converting takes seconds);
    returns that process. Fails soft: the archive is served whatever happens here."""
    if not settings.demo_study:
        return None
    found = sources(settings)
    if found is None:
        return None
    try:
        archive = open_archive(settings)
        try:
            empty = is_empty(archive)
        finally:
            archive.close()
    except ArchiveError as exc:
        log.warning("demo study not loaded: the index cannot be searched (%s)", exc.reason)
        return None
    if not empty:
        log.info("demo study not loaded: the archive holds studies already")
        return None
    log.warning(
        "the archive is empty: loading the demo study (patient %s) from %s in the "
        "background; it is listed once stored, in a few seconds",
        PATIENT_ID,
        testdata_folder(settings),
    )
    process = multiprocessing.get_context("spawn").Process(
        target=_load_in_process,
        args=(settings, found, time.time()),
        name="wsiarchive-demo",
        daemon=True,
    )
    process.start()
    return process
