"""Annotation objects made with highdicom for the tests and the benchmark: a Microscopy Bulk
Simple Annotations object of many nuclei polygons (as an AI writes them, Sup 222) and a
Comprehensive 3D SR with TID 1500 planar ROI groups (as Slim writes them)."""

from __future__ import annotations

from copy import deepcopy

import highdicom as hd
import numpy as np
from highdicom.sr import (
    ImageRegion3D,
    ObservationContext,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    TrackingIdentifier,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

NUCLEUS = hd.sr.CodedConcept("84640000", "SCT", "Nucleus")
CELL = hd.sr.CodedConcept("4421005", "SCT", "Cell")


def with_patient(slide: Dataset) -> Dataset:
    """*slide* with the patient and study attributes highdicom copies into derived objects,
    a slide origin and a brightfield optical path (which dicom-microscopy-viewer needs): the
    shared test slides leave these out."""
    defaults = {
        "PatientID": "ANN-1",
        "PatientName": "Annotation^Test",
        "PatientBirthDate": "",
        "PatientSex": "",
        "StudyID": "1",
        "AccessionNumber": "",
        "ReferringPhysicianName": "",
        "StudyDate": "20260101",
        "StudyTime": "120000",
        "ContainerIdentifier": "SLIDE-1",
    }
    for keyword, value in defaults.items():
        if keyword not in slide:
            setattr(slide, keyword, value)
    if "TotalPixelMatrixOriginSequence" not in slide:
        origin = Dataset()
        origin.XOffsetInSlideCoordinateSystem = 0
        origin.YOffsetInSlideCoordinateSystem = 0
        slide.TotalPixelMatrixOriginSequence = [origin]
    if "OpticalPathSequence" not in slide:
        path = Dataset()
        path.OpticalPathIdentifier = "1"
        path.IlluminationColorCodeSequence = [_code("414298005", "SCT", "Full Spectrum")]
        path.IlluminationTypeCodeSequence = [_code("111744", "DCM", "Brightfield illumination")]
        slide.OpticalPathSequence = [path]
        slide.NumberOfOpticalPaths = 1
    return slide


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def fresh_copy(slide: Dataset) -> Dataset:
    """*slide* as a new study, series and instance (the same pixels): one test's own slide."""
    copy = deepcopy(slide)
    copy.StudyInstanceUID, copy.SeriesInstanceUID = hd.UID(), hd.UID()
    copy.SOPInstanceUID = copy.file_meta.MediaStorageSOPInstanceUID = hd.UID()
    copy.FrameOfReferenceUID = hd.UID()
    return copy


def polygons(count: int, width: float, height: float, sides: int = 8, seed: int = 0) -> np.ndarray:
    """*count* regular polygons of *sides* vertices (closed: first point not repeated, as
    Sup 222 stores them) scattered over a width x height image: shape (count, sides, 2)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform((4, 4), (width - 4, height - 4), size=(count, 2))
    radii = rng.uniform(1.0, 3.0, size=(count, 1))
    angles = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (sides, 2)
    return (centres[:, None, :] + radii[:, :, None] * ring[None, :, :]).astype(np.float32)


def nuclei_annotations(
    slide: Dataset, count: int, sides: int = 8, three_d: bool = False
) -> hd.ann.MicroscopyBulkSimpleAnnotations:
    """A bulk annotation of *count* nuclei polygons on *slide*: 2D SCOORD in the total pixel
    matrix (Point Coordinates Data, float32), or with *three_d* SCOORD3D in the slide's frame
    of reference (Double Point Coordinates Data, float64)."""
    width = float(slide.TotalPixelMatrixColumns)
    height = float(slide.TotalPixelMatrixRows)
    shapes = polygons(count, width, height, sides)
    kind = hd.ann.AnnotationCoordinateTypeValues.SCOORD
    if three_d:
        to_slide = hd.spatial.ImageToReferenceTransformer.for_image(
            slide, for_total_pixel_matrix=True
        )
        flat = to_slide(shapes.reshape(-1, 2).astype(np.float64))
        shapes = flat.reshape(count, sides, 3)
        kind = hd.ann.AnnotationCoordinateTypeValues.SCOORD3D
    group = hd.ann.AnnotationGroup(
        number=1,
        uid=hd.UID(),
        label="nuclei",
        annotated_property_category=CELL,
        annotated_property_type=NUCLEUS,
        graphic_type=hd.ann.GraphicTypeValues.POLYGON,
        graphic_data=list(shapes),
        algorithm_type=hd.ann.AnnotationGroupGenerationTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="test nuclei", family=codes.DCM.ArtificialIntelligence, version="1"
        ),
    )
    return hd.ann.MicroscopyBulkSimpleAnnotations(
        source_images=[slide],
        annotation_coordinate_type=kind,
        annotation_groups=[group],
        series_instance_uid=hd.UID(),
        series_number=901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="wsiarchive tests",
        manufacturer_model_name="nuclei",
        software_versions="1",
        device_serial_number="1",
    )


def slim_report(slide: Dataset, regions: list[tuple[str, np.ndarray]]) -> hd.sr.Comprehensive3DSR:
    """A Comprehensive 3D SR with one TID 1410 group per (graphic type, points in the slide's
    frame of reference, mm) region: what Slim saves."""
    groups = []
    for number, (graphic_type, points) in enumerate(regions, 1):
        groups.append(
            PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier=f"ROI #{number}"),
                referenced_region=ImageRegion3D(
                    graphic_type=hd.sr.GraphicTypeValues3D[graphic_type],
                    graphic_data=points,
                    frame_of_reference_uid=slide.FrameOfReferenceUID,
                ),
                finding_type=codes.SCT.Tissue,
            )
        )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="Slim^User"),
    )
    report = hd.sr.MeasurementReport(
        observation_context=ObservationContext(observer_person_context=observer),
        procedure_reported=hd.sr.CodedConcept("112703", "DCM", "Whole Slide Imaging"),
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[slide],
        content=report,
        series_instance_uid=hd.UID(),
        series_number=902,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="Slim (highdicom)",
    )
