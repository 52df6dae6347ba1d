"""QIDO-RS in process: attributes returned at every level whether the index keeps them or not
(what OHIF asks for when it opens a study), and invalid matching values refused with 400."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid

from tests.dicomfiles import read
from tests.inprocess import store

WSI = "dicom/wsi2dcm_jpeg.dcm"
JSON = {"Accept": "application/dicom+json"}


@pytest.fixture
def slide(empty_web, testdata):
    """A real WSI instance given attributes the index does not keep, stored; the data set."""
    archive, client = empty_web
    dataset = read(testdata / WSI)
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.SeriesDate, dataset.SeriesTime = "20250102", "101112"
    dataset.PatientAge, dataset.Manufacturer = "042Y", "Scanner & Co"
    dataset.SeriesNumber, dataset.StudyDescription = 7, "Liver core"
    store(archive, dataset)
    return client, dataset


def value(result: dict, tag: str):  # type: ignore[no-untyped-def]
    element = result[tag]
    return (element.get("Value") or [None])[0]


def test_series_of_a_study_with_ohifs_includefield(slide) -> None:
    """Before: 500 (TypeError: 'CursorResult' object is not subscriptable)."""
    client, dataset = slide
    response = client.get(
        f"/dicomweb/studies/{dataset.StudyInstanceUID}/series",
        query_string={"includefield": "00080021,00080031,0008103E,00200011"},
        headers=JSON,
    )
    assert response.status_code == 200, response.json
    (series,) = response.json
    assert value(series, "00080021") == dataset.SeriesDate  # from the stored document
    assert value(series, "00080031") == dataset.SeriesTime
    assert value(series, "0008103E") == dataset.SeriesDescription  # from the index
    assert value(series, "00200011") == 7


def test_studies_with_attributes_kept_and_not(slide) -> None:
    client, dataset = slide
    response = client.get(
        "/dicomweb/studies",
        query_string={"includefield": "00101010,00081030,00080070"},
        headers=JSON,
    )
    assert response.status_code == 200, response.json
    (study,) = response.json
    assert value(study, "00101010") == "042Y"
    assert value(study, "00081030") == "Liver core"
    assert value(study, "00080070") == "Scanner & Co"


def test_instances_and_all_series_with_attributes_kept_and_not(slide) -> None:
    client, dataset = slide
    instances = client.get(
        "/dicomweb/instances", query_string={"includefield": "00080008,00200013"}, headers=JSON
    )
    assert instances.status_code == 200
    (instance,) = instances.json
    assert instance["00080008"]["Value"] == list(dataset.ImageType)
    assert value(instance, "00200013") == 1
    series = client.get(
        "/dicomweb/series", query_string={"includefield": "00080021,00101010"}, headers=JSON
    )
    assert series.status_code == 200
    (one,) = series.json
    assert value(one, "00080021") == "20250102"
    # A study attribute on /series results (PS3.18 §10.6.3: they carry the study's) that is
    # only in the document, and an attribute nobody has: empty, not missing.
    absent = client.get("/dicomweb/series", query_string={"includefield": "00181000"})
    assert absent.json[0]["00181000"] == {"vr": "LO"}


@pytest.mark.parametrize(
    "key,text",
    [
        ("StudyDate", "abc"),
        ("StudyDate", "20251345"),
        ("StudyDate", "2025-13-45"),
        ("StudyDate", "2025010"),
        ("StudyDate", "-"),
        ("StudyTime", "25"),
        ("StudyTime", "1261"),
        ("PatientBirthDate", "19700230"),
        ("AcquisitionDateTime", "2020133"),
        ("AcquisitionDateTime", "20200101120000+1500"),
        ("SeriesNumber", "x"),
        ("StudyInstanceUID", "1.2.x"),
    ],
)
def test_invalid_matching_values_are_400(corpus_web, key: str, text: str) -> None:
    """Before: 200 with whatever the comparison happened to match (PS3.18 §8.3: "If a
    supported Query Parameter has an invalid value, the origin server shall return a 400")."""
    level = "instances" if key in ("AcquisitionDateTime", "SeriesNumber") else "studies"
    response = corpus_web.get(f"/dicomweb/{level}", query_string={key: text})
    assert response.status_code == 400, response.json
    assert key in response.json["error"] and text[:4] in response.json["error"]


@pytest.mark.parametrize(
    "key,text",
    [
        ("StudyDate", "20201231"),
        ("StudyDate", "2020.12.31"),
        ("StudyDate", "20201231-"),
        ("StudyDate", "-20201231"),
        ("StudyTime", "2300-0100"),
        ("StudyTime", "23:30"),
        ("AcquisitionDateTime", "2020-2021"),
        ("AcquisitionDateTime", "20200101120000-0500"),
    ],
)
def test_valid_matching_values_are_searched(corpus_web, key: str, text: str) -> None:
    level = "instances" if key == "AcquisitionDateTime" else "studies"
    assert corpus_web.get(f"/dicomweb/{level}", query_string={key: text}).status_code == 200


def test_combined_date_and_time_are_checked_too(corpus_web) -> None:
    response = corpus_web.get(
        "/dicomweb/studies", query_string={"StudyDate": "20201231", "StudyTime": "2500"}
    )
    assert response.status_code == 400 and "StudyTime" in response.json["error"]
    night = corpus_web.get(
        "/dicomweb/studies",
        query_string={"StudyDate": "20201231-20210101", "StudyTime": "2300-0100"},
        headers=JSON,
    )
    assert night.status_code == 200 and len(night.json) == 2
