"""Bulk annotations (Sup 222) through WADO-RS: the metadata carries Point Coordinates Data and
Long Primitive Point Index List of nested annotation groups as BulkDataURIs (PS3.18 §8.6,
F.2.6), and the bulk data resource serves their bytes by offset from the blob, with Range,
in every little-endian encoding, without reading the data set around them."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from storage.retrieve.locate import locate
from tests.annotations import nuclei_annotations, with_patient
from tests.inprocess import instance_url, store

POINTS = 0x00660016  # Point Coordinates Data, OF
DOUBLE_POINTS = 0x00660022  # Double Point Coordinates Data, OD
INDEX = 0x00660040  # Long Primitive Point Index List, OL
GROUPS = 0x006A0002  # Annotation Group Sequence
OCTETS = {"Accept": "application/octet-stream"}


@pytest.fixture(scope="module")
def annotation(testdata):  # type: ignore[no-untyped-def]
    slide = with_patient(pydicom.dcmread(testdata / "dicom" / "wsi2dcm_jpeg.dcm"))
    return nuclei_annotations(slide, 2000)


def _encoded(dataset, syntax: str, undefined_lengths: bool) -> bytes:  # type: ignore[no-untyped-def]
    dataset.file_meta.TransferSyntaxUID = syntax
    for item in dataset.AnnotationGroupSequence:
        item.AnnotationGroupAlgorithmIdentificationSequence.is_undefined_length = undefined_lengths
    dataset["AnnotationGroupSequence"].is_undefined_length = undefined_lengths
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True, implicit_vr=syntax == ImplicitVRLittleEndian)
    return buffer.getvalue()


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("undefined_lengths", [False, True])
def test_the_locator_finds_nested_values_as_pydicom_reads_them(
    annotation, syntax: str, undefined_lengths: bool
) -> None:
    data = _encoded(annotation, syntax, undefined_lengths)
    group = pydicom.dcmread(io.BytesIO(data)).AnnotationGroupSequence[0]
    for tag, vr in ((POINTS, "OF"), (INDEX, "OL")):
        found = locate(io.BytesIO(data), [GROUPS, "0", tag], syntax)
        assert found is not None and found.vr == vr
        assert data[found.offset : found.offset + found.length] == group[tag].value
    top = locate(io.BytesIO(data), [0x00080018], syntax)  # a top-level element too
    assert top is not None
    value = data[top.offset : top.offset + top.length]
    assert value.rstrip(b"\0").decode() == annotation.SOPInstanceUID


def test_the_locator_answers_not_found_for_what_is_not_there(annotation) -> None:
    from storage.errors import NotFound

    data = _encoded(annotation, ExplicitVRLittleEndian, False)
    for steps in ([GROUPS, "1", POINTS], [GROUPS, "0", 0x00660017], [0x00282000]):
        with pytest.raises(NotFound):
            locate(io.BytesIO(data), steps, ExplicitVRLittleEndian)
    assert locate(io.BytesIO(data), [GROUPS, "0", POINTS], "1.2.840.10008.1.2.2") is None


def test_metadata_is_small_and_bulk_data_is_served_by_offset(
    empty_web, annotation, monkeypatch
) -> None:
    archive, client = empty_web
    data = _encoded(annotation, ExplicitVRLittleEndian, True)
    stored = store(archive, data)
    url = instance_url(stored)
    metadata = client.get(url + "/metadata")
    assert metadata.status_code == 200
    assert len(metadata.get_data()) < 16_000  # the 2000 polygons' 136 KB stay out
    group = metadata.json[0]["006A0002"]["Value"][0]
    points_uri = group["00660016"]["BulkDataURI"]
    assert "InlineBinary" not in group["00660016"] and group["00660016"]["vr"] == "OF"
    assert points_uri.endswith(url + "/bulkdata/006A0002/0/00660016")
    assert group["00660040"]["BulkDataURI"].endswith("/bulkdata/006A0002/0/00660040")
    expected = pydicom.dcmread(io.BytesIO(data)).AnnotationGroupSequence[0]

    def no_parsing(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the bulk data was read by parsing the data set")

    monkeypatch.setattr(archive, "bulk_element", no_parsing)
    path = points_uri.split("/dicomweb", 1)[1]
    whole = client.get("/dicomweb" + path, headers=OCTETS)
    assert whole.status_code == 200 and whole.get_data() == expected.PointCoordinatesData
    part = client.get("/dicomweb" + path, headers={**OCTETS, "Range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.get_data() == expected.PointCoordinatesData[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(expected.PointCoordinatesData)}"
    multipart = client.get(
        "/dicomweb" + path.replace("00660016", "00660040"),
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
    )
    assert multipart.status_code == 200
    assert expected.LongPrimitivePointIndexList in multipart.get_data()
    assert client.get(url + "/bulkdata/006A0002/3/00660016", headers=OCTETS).status_code == 404


def test_double_point_coordinates_of_3d_annotations_are_bulk_data_too(empty_web, testdata) -> None:
    archive, client = empty_web
    slide = with_patient(pydicom.dcmread(testdata / "dicom" / "wsi2dcm_jpeg.dcm"))
    ann = nuclei_annotations(slide, 500, three_d=True)
    data = _encoded(ann, ExplicitVRLittleEndian, False)
    expected = pydicom.dcmread(io.BytesIO(data)).AnnotationGroupSequence[0]
    assert "DoublePointCoordinatesData" in expected
    url = instance_url(store(archive, data))
    group = client.get(url + "/metadata").json[0]["006A0002"]["Value"][0]
    assert group["00660022"]["vr"] == "OD" and "BulkDataURI" in group["00660022"]
    path = group["00660022"]["BulkDataURI"].split("/dicomweb", 1)[1]
    got = client.get("/dicomweb" + path, headers=OCTETS)
    assert got.status_code == 200 and got.get_data() == expected.DoublePointCoordinatesData
