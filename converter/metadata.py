"""Slide metadata a user gives (JSON and/or flags), checked and made into wsidicom's model."""

from __future__ import annotations

import datetime
import difflib
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pydicom.sr.coding import Code

from converter.errors import ConversionError

# Documented defaults where the standard allows a generic value (docs/converter.md).
DEFAULT_SPECIMEN_TYPE = "tissue specimen"
DEFAULT_SAMPLING = "Block sectioning"


def parse_code(text: str, what: str) -> Code:
    """``SCT:39607008:Lung structure`` (scheme:value:meaning) → a coded concept."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ConversionError(
            f"{what} {text!r} must be written as SCHEME:VALUE:MEANING, "
            "e.g. SCT:39607008:Lung structure"
        )
    scheme, value, meaning = (p.strip() for p in parts)
    return Code(value, scheme, meaning)


@dataclass
class SlideInfo:
    """What the user says about a slide. Empty values are filled from the source file where
    the source knows them (pixel spacing, acquisition time, device)."""

    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""  # YYYYMMDD
    patient_sex: str = ""  # M, F or O
    study_uid: str = ""
    accession_number: str = ""
    study_id: str = ""
    study_date: str = ""  # YYYYMMDD
    study_time: str = ""  # HHMMSS
    study_description: str = ""
    referring_physician: str = ""
    series_uid: str = ""
    series_number: int | None = None
    series_description: str = ""
    container_identifier: str = ""  # the slide id
    specimen_identifier: str = ""  # default: the container identifier
    specimen_type: str = DEFAULT_SPECIMEN_TYPE
    collection: str = ""  # e.g. Biopsy, Excision
    sampling: str = DEFAULT_SAMPLING
    fixative: str = ""  # e.g. Formalin
    embedding: str = ""  # e.g. Paraffin wax
    stains: list[str] = field(default_factory=list)  # e.g. hematoxylin stain
    anatomy: str = ""  # SCHEME:VALUE:MEANING
    manufacturer: str = ""
    model_name: str = ""
    device_serial_number: str = ""
    software_versions: list[str] = field(default_factory=list)
    mpp: float | None = None  # micrometres per pixel at the base level, if the source lacks it
    frame_of_reference_uid: str = ""  # shared by every pyramid written for one slide

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str) -> SlideInfo:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConversionError(f"{source}: unknown metadata keys: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name in ("stains", "software_versions"):
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ConversionError(f"{source}: {name} must be a list of strings")
            elif name == "mpp":
                if value is not None and not isinstance(value, int | float):
                    raise ConversionError(f"{source}: mpp must be a number")
            elif name == "series_number":
                if value is not None and not isinstance(value, int):
                    raise ConversionError(f"{source}: series_number must be an integer")
            elif not isinstance(value, str):
                raise ConversionError(f"{source}: {name} must be a string")
            values[name] = value
        return cls(**values)

    @classmethod
    def from_json(cls, path: Path) -> SlideInfo:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConversionError(f"{path}: cannot read metadata JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConversionError(f"{path}: metadata JSON must be an object")
        return cls.from_mapping(data, str(path))

    def updated(self, **values: Any) -> SlideInfo:
        """A copy with every non-empty value of *values* replacing this one's."""
        changes = {k: v for k, v in values.items() if v not in (None, "", [], ())}
        return replace(self, **changes)

    def missing_facts(self) -> list[str]:
        """The WG-26 profile's specimen facts that are absent. PS3.3 C.7.6.22 lets them be
        empty (Primary Anatomic Structure Sequence and Specimen Preparation Sequence are
        Type 2); the WG-26 profile requires them."""
        missing = []
        if not self.anatomy:
            missing.append("the anatomy of the specimen (anatomy / --anatomy SCT:code:meaning)")
        if not self.prepared():
            missing.append(
                "a specimen preparation step (stains / fixative / embedding / collection, or "
                "--stain / --fixative / --embedding / --collection)"
            )
        return missing

    def prepared(self) -> bool:
        """True when some preparation step is known (the Specimen Preparation Sequence)."""
        return bool(self.stains or self.fixative or self.embedding or self.collection)

    def to_wsidicom(self) -> Any:
        """The WsiDicomizerMetadata for wsidicomizer. Specimen facts not given stay empty:
        no anatomy gives an empty Primary Anatomic Structure Sequence, no preparation step an
        empty Specimen Preparation Sequence (not the default specimen type and sampling)."""
        from wsidicom.conceptcode import (
            AnatomicPathologySpecimenTypesCode,
            SpecimenCollectionProcedureCode,
            SpecimenEmbeddingMediaCode,
            SpecimenFixativesCode,
            SpecimenSamplingProcedureCode,
            SpecimenStainsCode,
        )
        from wsidicom.metadata import (
            Collection,
            Embedding,
            Equipment,
            Fixation,
            Patient,
            PatientSex,
            Series,
            Slide,
            SlideSample,
            Specimen,
            Staining,
            Study,
        )
        from wsidicomizer.metadata import WsiDicomizerMetadata

        def coded(kind: Any, meaning: str, what: str) -> Any:
            known = {m.lower(): m for m in kind.list()}
            if meaning.strip().lower() in known:
                return kind(known[meaning.strip().lower()])
            close = difflib.get_close_matches(meaning.lower(), list(known), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(known[c]) for c in close)}?" if close else ""
            raise ConversionError(
                f"unknown {what} {meaning!r}: give one code meaning of its DICOM context "
                f"group per value (see `wsidicom.conceptcode.{kind.__name__}.list()`){hint}"
            )

        steps = []
        if self.fixative:
            steps.append(Fixation(coded(SpecimenFixativesCode, self.fixative, "fixative")))
        if self.embedding:
            steps.append(Embedding(coded(SpecimenEmbeddingMediaCode, self.embedding, "embedding")))
        specimen = Specimen(
            identifier=self.specimen_identifier or self.container_identifier,
            extraction_step=Collection(
                coded(SpecimenCollectionProcedureCode, self.collection, "collection method")
            )
            if self.collection
            else None,
            type=coded(AnatomicPathologySpecimenTypesCode, self.specimen_type, "specimen type"),
            steps=steps,
        )
        sample = SlideSample(
            identifier=self.specimen_identifier or self.container_identifier,
            anatomical_sites=[parse_code(self.anatomy, "anatomy")] if self.anatomy else None,
            sampled_from=specimen.sample(
                coded(SpecimenSamplingProcedureCode, self.sampling, "sampling method")
            )
            if self.prepared()
            else None,
        )
        stainings = (
            [Staining([coded(SpecimenStainsCode, s, "stain") for s in self.stains])]
            if self.stains
            else None
        )
        sex = {"M": PatientSex.M, "F": PatientSex.F, "O": PatientSex.O}.get(self.patient_sex)
        return WsiDicomizerMetadata(
            study=Study(
                uid=self.study_uid or None,
                identifier=self.study_id or None,
                date=_date(self.study_date, "study_date"),
                time=_time(self.study_time, "study_time"),
                accession_number=self.accession_number or None,
                referring_physician_name=self.referring_physician or None,
                description=self.study_description or None,
            ),
            series=Series(
                uid=self.series_uid or None,
                number=self.series_number,
                description=self.series_description or None,
            ),
            patient=Patient(
                name=self.patient_name or None,
                identifier=self.patient_id or None,
                birth_date=_date(self.patient_birth_date, "patient_birth_date"),
                sex=sex,
            ),
            equipment=Equipment(
                manufacturer=self.manufacturer or None,
                model_name=self.model_name or None,
                device_serial_number=self.device_serial_number or None,
                software_versions=self.software_versions or None,
            ),
            slide=Slide(
                identifier=self.container_identifier or None,
                stainings=stainings,
                samples=[sample],
            ),
            frame_of_reference_uid=self.frame_of_reference_uid or None,
        )


def _date(text: str, what: str) -> datetime.date | None:
    if not text:
        return None
    try:
        return datetime.datetime.strptime(text, "%Y%m%d").date()
    except ValueError as exc:
        raise ConversionError(f"{what} {text!r} is not a date as YYYYMMDD") from exc


def _time(text: str, what: str) -> datetime.time | None:
    if not text:
        return None
    for pattern in ("%H%M%S", "%H%M", "%H"):
        try:
            return datetime.datetime.strptime(text, pattern).time()
        except ValueError:
            continue
    raise ConversionError(f"{what} {text!r} is not a time as HHMMSS")
