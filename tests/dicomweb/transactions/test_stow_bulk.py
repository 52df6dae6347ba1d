"""STOW-RS of DICOM JSON metadata plus bulk data (PS3.18 §10.5.1.2): instances built from the
JSON and their bulk parts read back equal; each broken instance is a failure of its own
(§10.5.3) while the others are stored."""

from __future__ import annotations

import copy
import io

import numpy as np
import pydicom
import pytest

from dicomweb.http.dicomxml import to_xml
from tests.dicomfiles import bulk_body, json_with_bulk
from tests.inprocess import multiframe

CANNOT_UNDERSTAND = 0xC000
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122


def post(client, metadata, bulk):  # type: ignore[no-untyped-def]
    body, content_type = bulk_body(metadata, bulk)
    return client.post(
        "/dicomweb/studies",
        data=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
    )


def failures(response) -> list[tuple[int, str | None]]:  # type: ignore[no-untyped-def]
    """(Failure Reason, SOP Instance UID or None) of every failure of a STOW response."""
    module = response.json
    out = []
    for item in module.get("00081198", {}).get("Value", []) + module.get("0008119A", {}).get(
        "Value", []
    ):
        uid = item.get("00081155", {}).get("Value", [None])[0]
        out.append((item["00081197"]["Value"][0], uid))
    return out


def stored_instance(client, dataset) -> pydicom.Dataset:  # type: ignore[no-untyped-def]
    url = (
        f"/dicomweb/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    response = client.get(url, headers={"Accept": accept})
    assert response.status_code == 200, response.get_data()[:300]
    body = response.get_data()
    start = body.index(b"\r\n\r\n") + 4
    end = body.rindex(b"\r\n--")
    return pydicom.dcmread(io.BytesIO(body[start:end]))


def test_json_and_octet_stream_pixel_data_read_back_equal(empty_web) -> None:  # type: ignore[no-untyped-def]
    _, client = empty_web
    original = multiframe(3, 8, 12, seed=4)
    metadata, bulk = json_with_bulk(original)
    assert any(location for _, location, _ in bulk)  # the pixel data is a bulk part
    response = post(client, [metadata], bulk)
    assert response.status_code == 200, response.get_data()[:500]
    back = stored_instance(client, original)
    assert back.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert np.array_equal(back.pixel_array, original.pixel_array)
    assert back.PatientName == original.PatientName


def test_inline_binary_needs_no_bulk_part(empty_web) -> None:  # type: ignore[no-untyped-def]
    _, client = empty_web
    original = multiframe(1, 4, 4, seed=5)
    metadata = original.to_json_dict(bulk_data_threshold=1 << 20)
    assert "InlineBinary" in metadata["7FE00010"]
    response = post(client, metadata, [])
    assert response.status_code == 200, response.get_data()[:500]
    assert stored_instance(client, original).PixelData == original.PixelData


def test_compressed_pixel_data_part_is_one_frame(empty_web) -> None:  # type: ignore[no-untyped-def]
    """image/jp2 with its transfer-syntax parameter: encapsulated pixel data, one fragment."""
    _, client = empty_web
    original = multiframe(1, 64, 64, seed=6)
    frame = original.PixelData
    original.compress(pydicom.uid.JPEG2000Lossless, encoding_plugin="pylibjpeg")
    codestream = next(pydicom.encaps.generate_frames(original.PixelData, number_of_frames=1))
    metadata = original.to_json_dict()
    metadata["7FE00010"] = {"vr": "OB", "BulkDataURI": "frame1"}
    content_type = 'image/jp2; transfer-syntax="1.2.840.10008.1.2.4.90"'
    response = post(client, [metadata], [(content_type, "frame1", codestream)])
    assert response.status_code == 200, response.get_data()[:500]
    back = stored_instance(client, original)
    assert back.file_meta.TransferSyntaxUID == pydicom.uid.JPEG2000Lossless
    assert next(pydicom.encaps.generate_frames(back.PixelData, number_of_frames=1)) == codestream
    assert back.pixel_array.tobytes() == frame


def test_frames_sharing_a_content_location_are_the_frames_in_order(empty_web) -> None:  # type: ignore[no-untyped-def]
    _, client = empty_web
    original = multiframe(3, 64, 64, seed=7)
    frames = original.pixel_array.copy()
    original.compress(pydicom.uid.JPEG2000Lossless, encoding_plugin="pylibjpeg")
    codestreams = list(pydicom.encaps.generate_frames(original.PixelData, number_of_frames=3))
    metadata = original.to_json_dict()
    metadata["7FE00010"] = {"vr": "OB", "BulkDataURI": "pixels"}
    response = post(client, [metadata], [("image/jp2", "pixels", data) for data in codestreams])
    assert response.status_code == 200, response.get_data()[:500]
    back = stored_instance(client, original)
    assert list(pydicom.encaps.generate_frames(back.PixelData, number_of_frames=3)) == codestreams
    assert np.array_equal(back.pixel_array, frames)
    # The frames are served one by one, as stored.
    frame = client.get(
        f"/dicomweb/studies/{original.StudyInstanceUID}/series/{original.SeriesInstanceUID}"
        f"/instances/{original.SOPInstanceUID}/frames/2",
        headers={"Accept": 'multipart/related; type="image/jp2"'},
    )
    assert frame.status_code == 200
    assert codestreams[1] in frame.get_data()


def _two(seed: int) -> tuple[list[dict], list[tuple[str, str, bytes]], list[pydicom.Dataset]]:
    datasets = [multiframe(1, 16, 16, seed=seed), multiframe(1, 16, 16, seed=seed + 1)]
    metadata, bulk = [], []
    for number, dataset in enumerate(datasets):
        obj, parts = json_with_bulk(dataset, base=f"http://client.example/{number}/")
        metadata.append(obj)
        bulk += parts
    return metadata, bulk, datasets


@pytest.mark.parametrize(
    "breakage",
    ["missing-bulk-part", "no-sop-instance-uid", "no-study-uid", "no-sop-class-uid", "bad-vr"],
)
def test_a_broken_instance_fails_alone(empty_web, breakage: str) -> None:  # type: ignore[no-untyped-def]
    _, client = empty_web
    metadata, bulk, datasets = _two(10)
    broken = metadata[1]
    if breakage == "missing-bulk-part":
        bulk = [part for part in bulk if "/1/" not in part[1]]
    elif breakage == "no-sop-instance-uid":
        del broken["00080018"]
    elif breakage == "no-study-uid":
        del broken["0020000D"]
    elif breakage == "no-sop-class-uid":
        del broken["00080016"]
    else:
        broken["00280010"] = {"vr": "US", "Value": ["not a number"]}
    response = post(client, metadata, bulk)
    assert response.status_code == 202, response.get_data()[:500]
    [(code, uid)] = failures(response)
    assert code == CANNOT_UNDERSTAND
    if breakage not in ("no-sop-instance-uid", "no-sop-class-uid"):
        assert uid == datasets[1].SOPInstanceUID  # in the Failed SOP Sequence
    else:
        assert uid is None  # in the Other Failures Sequence: no UIDs to name it by
    assert stored_instance(client, datasets[0]).PixelData == datasets[0].PixelData
    assert "Warning" in response.headers


def test_an_unreferenced_part_is_a_failure_and_the_instance_is_stored(empty_web) -> None:  # type: ignore[no-untyped-def]
    _, client = empty_web
    metadata, bulk, datasets = _two(20)
    bulk.append(("application/octet-stream", "http://client.example/stray", b"\1\2\3\4"))
    response = post(client, metadata, bulk)
    assert response.status_code == 202, response.get_data()[:500]
    assert failures(response) == [(CANNOT_UNDERSTAND, None)]
    assert "no BulkDataURI names" in response.headers["Warning"]
    for dataset in datasets:
        assert stored_instance(client, dataset).PixelData == dataset.PixelData


def test_invalid_json_is_400_and_stores_nothing(empty_web) -> None:  # type: ignore[no-untyped-def]
    _, client = empty_web
    response = post(client, b'[{"00080016": ', [])
    assert response.status_code == 400
    assert failures(response) == [(CANNOT_UNDERSTAND, None)]
    assert "DICOM JSON is invalid" in response.headers["Warning"]
    assert client.get("/dicomweb/instances").json == []


def test_a_media_type_that_is_no_pixel_data_is_c122(empty_web) -> None:  # type: ignore[no-untyped-def]
    _, client = empty_web
    original = multiframe(1, 4, 4, seed=30)
    metadata = copy.deepcopy(original.to_json_dict())
    metadata["7FE00010"] = {"vr": "OB", "BulkDataURI": "px"}
    response = post(client, [metadata], [("text/plain", "px", b"hello!")])
    assert response.status_code == 400
    assert failures(response) == [(TRANSFER_SYNTAX_NOT_SUPPORTED, original.SOPInstanceUID)]


def post_xml(client, documents: list[bytes], bulk):  # type: ignore[no-untyped-def]
    body, content_type = bulk_body(documents, bulk, metadata_type="application/dicom+xml")
    return client.post(
        "/dicomweb/studies",
        data=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
    )


def test_xml_metadata_parts_one_per_instance(empty_web) -> None:  # type: ignore[no-untyped-def]
    """application/dicom+xml (PS3.19 Annex A), each instance a part, made by the server's own
    JSON-to-XML writer (what its WADO-RS metadata in XML is)."""
    _, client = empty_web
    metadata, bulk, datasets = _two(40)
    datasets[0].PatientName = "Doe^Jane^Q"
    metadata[0]["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane^Q"}]}
    response = post_xml(client, [to_xml(obj) for obj in metadata], bulk)
    assert response.status_code == 200, response.get_data()[:500]
    for dataset in datasets:
        back = stored_instance(client, dataset)
        assert back.PixelData == dataset.PixelData
        assert back.PatientName == dataset.PatientName
        assert back.Rows == dataset.Rows and back.NumberOfFrames == dataset.NumberOfFrames


def test_xml_with_a_dtd_or_malformed_is_refused(empty_web) -> None:  # type: ignore[no-untyped-def]
    _, client = empty_web
    laughs = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><NativeDicomModel/>'
    response = post_xml(client, [laughs, b"<NativeDicomModel><oops"], [])
    assert response.status_code == 400
    assert failures(response) == [(CANNOT_UNDERSTAND, None)] * 2
    assert "DICOM XML is invalid" in response.headers["Warning"]


def _nested_sequences(levels: int) -> dict:
    """A Specimen Description Sequence whose item holds one, and so on *levels* deep."""
    inner: dict = {}
    for _ in range(levels):
        inner = {"00400560": {"vr": "SQ", "Value": [inner]}}
    return inner


@pytest.mark.parametrize(
    ("kind", "document", "reason"),
    [
        ("json", b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        ("json", 300, "nested deeper than 200 levels"),
        ("xml", 80, "nested deeper than 200 levels"),
        ("xml", 500, "nested too deeply"),
        ("json", "uid", "is not a valid UID"),
    ],
)
def test_hostile_metadata_is_c000_not_a_crash(empty_web, kind: str, document, reason: str) -> None:  # type: ignore[no-untyped-def]
    """JSON nested past the parser's stack, XML sequences nested past the reader's, sequences
    nested deeper than the builder takes, a SOP Instance UID pydicom cannot write in the File
    Meta Information: each a C000 with its reason, nothing of it stored; the good instance
    beside it is stored (202)."""
    _, client = empty_web
    good = multiframe(1, 4, 4, seed=50)
    good_metadata = good.to_json_dict(bulk_data_threshold=1 << 20)
    bad = multiframe(1, 4, 4, seed=51).to_json_dict(bulk_data_threshold=1 << 20)
    if isinstance(document, int):
        bad.update(_nested_sequences(document))
    elif document == "uid":
        bad["00080018"] = {"vr": "UI", "Value": ["1.2.\u4e2d"]}
    if kind == "xml":
        response = post_xml(client, [to_xml(bad), to_xml(good_metadata)], [])
    elif isinstance(document, bytes):
        body, content_type = bulk_body(document, [])
        response = client.post(
            "/dicomweb/studies", data=body, headers={"Content-Type": content_type}
        )
        assert response.status_code == 400, response.get_data()[:500]
        assert failures(response) == [(CANNOT_UNDERSTAND, None)]
        assert reason in response.headers["Warning"]
        assert client.get("/dicomweb/instances").json == []
        return
    else:
        response = post(client, [bad, good_metadata], [])
    assert response.status_code == 202, response.get_data()[:500]
    [(code, _)] = failures(response)
    assert code == CANNOT_UNDERSTAND and reason in response.headers["Warning"]
    [stored] = client.get("/dicomweb/instances").json
    assert stored["00080018"]["Value"] == [good.SOPInstanceUID]
    assert stored_instance(client, good).PixelData == good.PixelData


def test_a_native_value_named_by_two_parts_is_refused(empty_web) -> None:  # type: ignore[no-untyped-def]
    """Two parts under one Content-Location make the frames of compressed pixel data; for
    a native value (here the octet-stream pixel data, sent twice by a client retrying a
    part) they were joined into twice the bytes and stored: now C000, nothing stored."""
    _, client = empty_web
    original = multiframe(2, 8, 8, seed=80)
    metadata, bulk = json_with_bulk(original)
    [(kind, location, data)] = bulk
    response = post(client, [metadata], [(kind, location, data), (kind, location, data)])
    assert response.status_code == 400, response.get_data()[:500]
    assert failures(response) == [(CANNOT_UNDERSTAND, original.SOPInstanceUID)]
    assert "names 2 parts" in response.headers["Warning"]
    assert client.get("/dicomweb/instances").json == []
