"""Importing files into the archive: DICOM as it is, vendor slides through the converter.

A slide is converted into a workspace inside the blob store's staging area, so each instance
reaches its place by a rename (no second copy on disk); if any of its instances cannot be
stored, none is: the archive commits a slide's instances in one transaction, so a slide is
stored whole or not at all, even when the importing process is killed.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydicom.datadict import tag_for_keyword

from converter import (
    ConversionError,
    ConversionOptions,
    SlideInfo,
    convert,
    named_as_slide,
    recognises,
)
from storage import Archive
from storage.access import Principal
from storage.dicom.bare import part10_header
from storage.dicom.document import JsonObject
from storage.dicom.levels import Level
from storage.dicom.part10 import lacks_preamble
from storage.errors import ArchiveError
from storage.query.keys import by_keyword
from storage.query.search import Search
from storage.records import StoredInstance

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one import did: DICOM instances stored, slides converted (their instances per
    slide file), files of a folder skipped as neither, and failures with reasons."""

    stored: dict[Path, list[str]] = field(default_factory=dict)
    slides: dict[Path, list[str]] = field(default_factory=dict)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the person who ran the import."""
        instances = sum(len(uids) for uids in self.slides.values())
        return (
            f"{len(self.stored)} DICOM instances stored, {len(self.slides)} slides converted "
            f"into {instances} instances, {len(self.skipped)} files skipped, "
            f"{len(self.failed)} failed"
        )


def is_dicom(path: Path) -> bool:
    """A Part-10 file ('DICM' after the preamble), or File Meta without a preamble."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or lacks_preamble(head)


def study_for(archive: Archive, info: SlideInfo, who: Principal) -> SlideInfo:
    """Reuse the Study Instance UID the archive holds for this accession number (and patient),
    so several slides of one case share one study; a slide that names no patient takes the
    study's (the Patient Module of one study is one patient's)."""
    if info.study_uid or not info.accession_number:
        return info
    uid = archive.study_for_accession(info.accession_number, info.patient_id, who=who)
    if not uid:
        return info
    if info.patient_id or info.patient_name:
        return info.updated(study_uid=uid)
    return info.updated(study_uid=uid, **_patient_of(archive, uid, who))


def _patient_of(archive: Archive, study: str, who: Principal) -> dict[str, str]:
    """The patient attributes the archive holds for *study*, as SlideInfo fields."""
    search = Search(Level.STUDY, levels={Level.STUDY}, limit=1)
    search.where(by_keyword("StudyInstanceUID"), study)
    found = archive.search(search, who=who).results
    if not found:
        return {}
    dataset = found[0].dataset
    return {
        field_name: str(text_of(dataset, keyword))
        for field_name, keyword in PATIENT_FIELDS.items()
        if text_of(dataset, keyword)
    }


def text_of(dataset: JsonObject, keyword: str) -> str:
    """The first value of a DICOM JSON attribute as text (a PN's Alphabetic form)."""
    tag = f"{tag_for_keyword(keyword):08X}"
    value = (dataset.get(tag) or {}).get("Value") or [""]
    first = value[0]
    return str(first.get("Alphabetic", "") if isinstance(first, dict) else first)


PATIENT_FIELDS = {
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
}


def import_slide(
    archive: Archive,
    path: Path,
    info: SlideInfo,
    options: ConversionOptions,
    who: Principal,
    report: Callable[[str], None] | None = None,
) -> list[str]:
    """Convert *path* and store every instance as *who*; returns their SOP Instance UIDs.
    The slide's study is chosen once its label has been read (study_for)."""
    if report is not None and options.warn is None:
        options = replace(options, warn=lambda text: report(f"warning: {text}"))
    workspace = archive.workspace()
    try:
        files = convert(path, workspace, info, options, lambda s: study_for(archive, s, who))
        return [stored.instance for stored in archive.ingest_staged_files(files, who=who)]
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def import_paths(
    archive: Archive,
    paths: list[Path],
    info: SlideInfo,
    options: ConversionOptions,
    who: Principal,
    report: Callable[[str], None] = print,
) -> Outcome:
    """Import files and folders (recursively); DICOM files are stored, slides converted. A
    file found in a folder that is neither (a readme.txt beside the slides) is skipped with
    a note; a file named on its own that is neither is a failure, and so is a slide that
    cannot be read (a damaged .svs in a folder is not skipped: it would be lost unseen). A
    data set stored without File Meta is stored with the File Meta its encoding tells."""
    outcome = Outcome()
    for path, named in _expand(paths):
        try:
            if not path.exists():
                raise ArchiveError("no such file or directory")
            if is_dicom(path):
                result = archive.ingest_file(path, who=who)
                outcome.stored[path] = [result.instance]
                report(f"stored {path} as {result.instance} ({result.number_of_frames} frames)")
            elif not named_as_slide(path) and (header := part10_header(path)) is not None:
                result = _ingest_bare(archive, path, header, who)
                outcome.stored[path] = [result.instance]
                report(f"stored {path} as {result.instance} (a data set without File Meta)")
            elif not named and not recognises(path) and not named_as_slide(path):
                outcome.skipped.append(path)
                report(f"note: skipped {path}: neither DICOM nor a slide format")
            else:
                uids = import_slide(archive, path, info, options, who, report)
                outcome.slides[path] = uids
                report(f"converted {path} into {len(uids)} instances")
        except (ArchiveError, ConversionError) as exc:
            reason = exc.reason if isinstance(exc, ArchiveError) else str(exc)
            outcome.failed[path] = reason
            report(
                f"error: {reason}" if reason.startswith(str(path)) else f"error: {path}: {reason}"
            )
    return outcome


def _ingest_bare(archive: Archive, path: Path, header: bytes, who: Principal) -> StoredInstance:
    """Store the bare data set at *path* as a Part-10 file: *header*, then its bytes as they
    are, written in the staging area and renamed into place."""
    workspace = archive.workspace()
    try:
        target = workspace / "instance.dcm"
        with open(path, "rb") as source, open(target, "wb") as out:
            out.write(header)
            shutil.copyfileobj(source, out, 1 << 20)
        return archive.ingest_staged_file(target, who=who)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def companion_of(path: Path) -> bool:
    """True for the data files of a multi-file slide (the folder of an Olympus .vsi or of a
    3DHISTECH .mrxs): they are read through the slide file, not imported on their own."""
    for parent in path.parents:
        name = parent.name
        if (
            name.startswith("_")
            and name.endswith("_")
            and (parent.parent / f"{name[1:-1]}.vsi").exists()
        ):
            return True
        if (parent.parent / f"{name}.mrxs").exists():
            return True
    return False


def _expand(paths: list[Path]) -> list[tuple[Path, bool]]:
    """Every file to import, and whether it was named itself (not found in a folder)."""
    found: list[tuple[Path, bool]] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                (p, False) for p in path.rglob("*") if p.is_file() and not companion_of(p)
            )
        else:
            found.append((path, True))
    return found
