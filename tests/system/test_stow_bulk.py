"""STOW-RS of DICOM JSON metadata plus bulk data parts (PS3.18 §10.5.1.2) over HTTP to a real
server, as an AI system writes its results: a highdicom annotation object (ANN) whose point
coordinates are bulk parts, and a CT and a CR whose pixel data is an octet-stream part; each
read back over WADO-RS equal to the original."""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from tests.dicomfiles import bulk_body, json_with_bulk

SOURCE = "dicom/wsi2dcm_jpeg.dcm"


@pytest.fixture(scope="module")
def server(fresh_server_module):
    return fresh_server_module()


def stow(server, metadata: object, bulk) -> requests.Response:  # type: ignore[no-untyped-def]
    body, content_type = bulk_body(metadata, bulk)
    return requests.post(
        server.url + "/studies",
        data=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
        timeout=60,
    )


def retrieve(server, dataset: pydicom.Dataset) -> pydicom.Dataset:
    """The stored instance over WADO-RS, as stored (transfer-syntax=*)."""
    response = requests.get(
        f"{server.url}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        timeout=60,
    )
    assert response.status_code == 200, response.text[:300]
    body = response.content
    return pydicom.dcmread(io.BytesIO(body[body.index(b"\r\n\r\n") + 4 : body.rindex(b"\r\n--")]))


def annotations(source: pydicom.Dataset) -> hd.ann.MicroscopyBulkSimpleAnnotations:
    """An ANN of 500 polygons (nuclei an AI found) on *source*, made by highdicom."""
    rng = np.random.default_rng(7)
    centres = rng.uniform(50, 400, (500, 2))
    square = np.array([[-3, -3], [3, -3], [3, 3], [-3, 3]], np.float32)
    polygons = [(centre + square).astype(np.float32) for centre in centres]
    group = hd.ann.AnnotationGroup(
        number=1,
        uid=generate_uid(),
        label="nuclei",
        annotated_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical Stucture"),
        annotated_property_type=hd.sr.CodedConcept("84640000", "SCT", "Nucleus"),
        graphic_type=hd.ann.GraphicTypeValues.POLYGON,
        graphic_data=polygons,
        algorithm_type=hd.ann.AnnotationGroupGenerationTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="nuclei-finder", version="1.0", family=hd.sr.CodedConcept("123109", "DCM", "CAD")
        ),
    )
    return hd.ann.MicroscopyBulkSimpleAnnotations(
        source_images=[source],
        annotation_coordinate_type=hd.ann.AnnotationCoordinateTypeValues.SCOORD,
        annotation_groups=[group],
        series_instance_uid=generate_uid(),
        series_number=90,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="wsiarchive tests",
        manufacturer_model_name="stow-bulk",
        software_versions="1",
        device_serial_number="1",
    )


def test_an_annotation_object_with_bulk_coordinates(server, testdata) -> None:  # type: ignore[no-untyped-def]
    source = pydicom.dcmread(testdata / SOURCE, stop_before_pixels=True)
    # What highdicom copies from the source and this slide's converter left out.
    source.FrameOfReferenceUID = source.get("FrameOfReferenceUID") or generate_uid()
    for keyword in (
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "AccessionNumber",
        "ReferringPhysicianName",
        "PatientName",
    ):
        setattr(source, keyword, source.get(keyword, ""))
    ann = annotations(source)
    metadata, bulk = json_with_bulk(ann)
    coordinates = ann.AnnotationGroupSequence[0].PointCoordinatesData
    group = ann.AnnotationGroupSequence[0]
    # The coordinates and the polygons' point index list (inside Annotation Group Sequence)
    # travel as bulk parts, not inline.
    assert [data for _, _, data in bulk] == [coordinates, group.LongPrimitivePointIndexList]
    response = stow(server, [metadata], bulk)
    assert response.status_code == 200, response.text[:500]
    back = retrieve(server, ann)
    assert back.AnnotationGroupSequence[0].PointCoordinatesData == coordinates
    assert back.AnnotationGroupSequence[0].LongPrimitivePointIndexList == (
        group.LongPrimitivePointIndexList
    )
    read_back = hd.ann.MicroscopyBulkSimpleAnnotations.from_dataset(back)
    [group] = read_back.get_annotation_groups()
    assert len(group.get_graphic_data(hd.ann.AnnotationCoordinateTypeValues.SCOORD)) == 500
    assert np.array_equal(
        np.concatenate(group.get_graphic_data(hd.ann.AnnotationCoordinateTypeValues.SCOORD)),
        np.concatenate(
            ann.get_annotation_groups()[0].get_graphic_data(
                hd.ann.AnnotationCoordinateTypeValues.SCOORD
            )
        ),
    )


@pytest.mark.parametrize(
    "name",
    ["radiology/fodicom_CT-MONO2-16-ankle.dcm", "radiology/fodicom_CR-MONO1-10-chest.nopreamble"],
)
def test_radiology_pixel_data_as_an_octet_stream_part(server, testdata, name: str) -> None:  # type: ignore[no-untyped-def]
    # The CR has no preamble nor File Meta (implicit VR little endian): its pixel bytes are
    # those of an octet-stream part all the same (PS3.18 §8.7.3.3).
    original = pydicom.dcmread(testdata / name, force=True)
    if "TransferSyntaxUID" not in original.file_meta:
        original.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    metadata, bulk = json_with_bulk(original)
    assert any(len(data) == len(original.PixelData) for _, _, data in bulk)
    response = stow(server, [metadata], bulk)
    assert response.status_code == 200, response.text[:500]
    back = retrieve(server, original)
    assert back.PixelData == original.PixelData
    assert np.array_equal(back.pixel_array, original.pixel_array)
    assert back.PatientName == original.PatientName


def test_a_refused_instance_leaves_no_staged_files(server, testdata) -> None:  # type: ignore[no-untyped-def]
    """A BulkDataURI naming no part: Failure Reason C000 with 400; the bulk parts received
    into the staging area are removed with the request."""
    original = pydicom.dcmread(testdata / "radiology/fodicom_CT-MONO2-16-ankle.dcm")
    original.SOPInstanceUID = generate_uid()
    metadata, bulk = json_with_bulk(original)
    response = stow(
        server, [metadata], [(kind, location + "-other", data) for kind, location, data in bulk]
    )
    assert response.status_code == 400
    codes = [item["00081197"]["Value"][0] for item in response.json()["00081198"]["Value"]]
    assert codes == [0xC000]
    # The parts under other names are named by no BulkDataURI: Other Failures, C000 each.
    others = [item["00081197"]["Value"][0] for item in response.json()["0008119A"]["Value"]]
    assert others == [0xC000] * len(bulk)
    assert "names no part" in response.headers["Warning"]
    assert list((server.data_dir / "blobs" / ".staging").iterdir()) == []


@pytest.mark.parametrize("breakage", ["json-nested-past-the-parser", "uid-not-latin-1"])
def test_hostile_metadata_is_refused_with_its_reason(server, testdata, breakage: str) -> None:  # type: ignore[no-untyped-def]
    """A DICOM JSON part nested deeper than the parser's stack, and an instance whose SOP
    Instance UID pydicom cannot write into the File Meta Information: 400 with C000 and the
    reason (these were 500s), nothing stored, nothing left in the staging area."""
    original = pydicom.dcmread(testdata / "radiology/fodicom_CT-MONO2-16-ankle.dcm")
    original.SOPInstanceUID = generate_uid()
    metadata, bulk = json_with_bulk(original)
    if breakage == "uid-not-latin-1":
        metadata["00080018"] = {"vr": "UI", "Value": ["1.2.\u4e2d"]}
        document: object = [metadata]
        reason = "is not a valid UID"
    else:
        document = b"[" * 20000 + b"]" * 20000
        reason = "nested too deeply"
    response = stow(server, document, bulk)
    assert response.status_code == 400, response.text[:500]
    module = response.json()
    codes = [
        item["00081197"]["Value"][0]
        for key in ("00081198", "0008119A")
        for item in module.get(key, {}).get("Value", [])
    ]
    assert set(codes) == {0xC000}
    assert reason in response.headers["Warning"]
    assert "00081199" not in module
    found = requests.get(
        f"{server.url}/instances", params={"SOPInstanceUID": original.SOPInstanceUID}, timeout=30
    )
    assert found.status_code in (200, 204) and not (found.content and found.json())
    assert list((server.data_dir / "blobs" / ".staging").iterdir()) == []


def test_a_large_bulk_part_streams_and_is_stored_byte_for_byte(fresh_server) -> None:  # type: ignore[no-untyped-def]
    """192 MiB of native pixel data in one octet-stream part, sent chunked: the server's
    worker grows by half the part at most (it is received into a file and copied in chunks;
    measured 37 to 57 MiB here, 64 MiB for a 448 MiB part), and every frame served
    afterwards is the one sent, byte for byte."""
    import hashlib

    import numpy as np

    from tests.dicomfiles import parse_multipart
    from tests.inprocess import multiframe
    from tests.system.test_hostile import growth, peak_rss

    frames, side = 192, 1024
    server = fresh_server(workers="1")
    dataset = multiframe(1, 4, 4, seed=70)
    del dataset.PixelData
    dataset.Rows = dataset.Columns = side
    dataset.NumberOfFrames = frames
    metadata = dataset.to_json_dict()
    metadata["7FE00010"] = {"vr": "OB", "BulkDataURI": "pixels"}

    def frame(number: int) -> bytes:
        return np.random.default_rng(number).integers(0, 256, side * side, np.uint8).tobytes()

    boundary = "large-bulk-part"

    def body():  # type: ignore[no-untyped-def]
        import json

        yield (
            f"--{boundary}\r\nContent-Type: application/dicom+json\r\n\r\n"
            f"{json.dumps([metadata])}\r\n--{boundary}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Location: pixels\r\n\r\n"
        ).encode()
        for number in range(frames):
            yield frame(number)
        yield f"\r\n--{boundary}--\r\n".encode()

    # The same code run once on a small image, so that the baseline has it loaded.
    small = multiframe(2, 64, 64, seed=71)
    warm, warm_bulk = json_with_bulk(small)
    assert stow(server, [warm], warm_bulk).status_code == 200
    before = peak_rss(server)
    response = requests.post(
        f"{server.url}/studies",
        data=body(),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom+json"; boundary={boundary}'
        },
        timeout=300,
    )
    assert response.status_code == 200, response.text[:500]
    grown = growth(before, peak_rss(server))
    print(f"worker peak grew by {grown / (1 << 20):.1f} MiB for a 192 MiB bulk part")
    assert grown < 96 << 20, f"the worker grew by {grown >> 20} MiB for a 192 MiB part"
    url = (
        f"{server.url}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}/frames/"
    )
    sent, served = hashlib.sha256(), hashlib.sha256()
    for start in range(1, frames + 1, 32):
        numbers = range(start, min(start + 32, frames + 1))
        answer = requests.get(
            url + ",".join(map(str, numbers)),
            headers={"Accept": 'multipart/related; type="application/octet-stream"'},
            timeout=60,
        )
        assert answer.status_code == 200
        for number, (_, data) in zip(
            numbers, parse_multipart(answer.headers["Content-Type"], answer.content), strict=True
        ):
            sent.update(frame(number - 1))
            served.update(data)
    assert served.hexdigest() == sent.hexdigest()
