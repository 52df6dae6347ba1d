"""STOW-RS refusals: each bad request gets the status PS3.18 prescribes, a readable reason, and
leaves nothing behind."""

from __future__ import annotations

import io
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pydicom
import pytest
import requests

from tests.dicomfiles import multipart_body, read

LABEL = "dicom/ezwsi_label_test.dcm"
CAMELYON = "dicom/ezwsi_multiframe_camelyon_challenge_image.dcm"


def state(server) -> tuple[int, list[str], list[str]]:
    """What the archive holds: stored instances (QIDO), blob files, staged leftovers."""
    instances = requests.get(server.url + "/instances").json()
    blobs = server.data_dir / "blobs"
    files = sorted(
        str(p.relative_to(blobs))
        for p in blobs.rglob("*")
        if p.is_file() and ".staging" not in p.parts
    )
    staged = sorted(p.name for p in (blobs / ".staging").iterdir())
    return len(instances), files, staged


def post(server, body: bytes, content_type: str, path: str = "/studies", **headers: str):
    return requests.post(
        server.url + path,
        data=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json", **headers},
    )


def changed_copy(path: Path, **attributes: str) -> bytes:
    """The file with some attributes changed (a new instance derived from a real one)."""
    dataset = read(path)
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    if "SOPInstanceUID" in attributes:
        dataset.file_meta.MediaStorageSOPInstanceUID = attributes["SOPInstanceUID"]
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


@pytest.fixture
def empty(fresh_server):
    return fresh_server()


def assert_nothing_stored(server) -> None:
    count, files, staged = state(server)
    assert (count, files, staged) == (0, [], [])


def test_wrong_content_type_is_415(empty, testdata) -> None:
    data = (testdata / LABEL).read_bytes()
    response = post(empty, data, "application/json")
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    # Metadata plus bulk data is accepted (tests/system/test_stow_bulk.py), other parts not.
    response = post(empty, data, 'multipart/related; type="application/pdf"; boundary=x')
    assert response.status_code == 415
    assert "application/pdf" in response.json()["error"]
    assert_nothing_stored(empty)


def test_malformed_multipart_is_400(empty, testdata) -> None:
    data = (testdata / LABEL).read_bytes()
    body, content_type = multipart_body([data])
    # No boundary parameter.
    response = post(empty, body, 'multipart/related; type="application/dicom"')
    assert response.status_code == 400
    assert "boundary" in response.json()["error"]
    # A boundary that does not occur in the body.
    response = post(empty, body, 'multipart/related; type="application/dicom"; boundary=nothere')
    assert response.status_code == 400
    # An empty multipart body: the closing delimiter only.
    response = post(empty, b"--b--\r\n", 'multipart/related; type="application/dicom"; boundary=b')
    assert response.status_code == 400
    assert "no instances" in response.json()["error"]
    assert_nothing_stored(empty)


def test_truncated_body_stores_nothing(empty, testdata) -> None:
    first = (testdata / LABEL).read_bytes()
    second = (testdata / CAMELYON).read_bytes()
    body, content_type = multipart_body([first, second])
    # Cut inside the second part: the first part is complete but must not be stored either.
    cut = body[: len(body) - len(second) // 2]
    response = post(empty, cut, content_type)
    assert response.status_code == 400
    assert "truncated" in response.json()["error"]
    assert_nothing_stored(empty)


def test_body_shorter_than_content_length_stores_nothing(empty, testdata) -> None:
    body, content_type = multipart_body([(testdata / LABEL).read_bytes()])
    host, port = "127.0.0.1", empty.port
    with socket.create_connection((host, port)) as sock:
        head = (
            f"POST /dicomweb/studies HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Accept: application/dicom+json\r\n\r\n"
        )
        sock.sendall(head.encode() + body[: len(body) // 2])
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    # The client gave up half way; whether or not it reads a reply, nothing may be stored.
    if reply:
        assert reply.split(b"\r\n", 1)[0].split()[1] == b"400"
    assert_nothing_stored(empty)


def test_non_dicom_part_is_400_with_failure(empty, testdata) -> None:
    body, content_type = multipart_body([b"this is not DICOM" * 20])
    response = post(empty, body, content_type)
    assert response.status_code == 400
    result = response.json()
    assert result["0008119A"]["Value"][0]["00081197"]["Value"] == [0xC000]
    assert "not a DICOM Part-10 file" in response.headers["Warning"]
    assert_nothing_stored(empty)


def test_truncated_dicom_file_in_a_part_is_refused(empty, testdata) -> None:
    data = (testdata / CAMELYON).read_bytes()
    body, content_type = multipart_body([data[: len(data) - 5000]])
    response = post(empty, body, content_type)
    assert response.status_code == 400
    failed = response.json()["00081198"]["Value"][0]
    assert failed["00081155"]["Value"] == [read(testdata / CAMELYON).SOPInstanceUID]
    assert failed["00081197"]["Value"] == [0xC000]
    assert "truncated" in response.headers["Warning"]
    assert_nothing_stored(empty)


def test_mixed_good_and_bad_parts_is_202(empty, testdata) -> None:
    good = (testdata / LABEL).read_bytes()
    body, content_type = multipart_body([good, b"garbage" * 100])
    response = post(empty, body, content_type)
    assert response.status_code == 202
    result = response.json()
    assert len(result["00081199"]["Value"]) == 1
    assert len(result["0008119A"]["Value"]) == 1
    assert state(empty)[0] == 1
    assert state(empty)[2] == []


def test_wrong_part_media_type_is_a_failure(empty, testdata) -> None:
    body, content_type = multipart_body(
        [(testdata / LABEL).read_bytes()], content_type="image/jpeg"
    )
    response = post(empty, body, content_type)
    assert response.status_code == 400
    assert "image/jpeg" in response.headers["Warning"]
    assert_nothing_stored(empty)


def test_invalid_uids_are_refused(empty, testdata) -> None:
    bad = changed_copy(testdata / LABEL, SOPInstanceUID="1.2.3.abc")
    body, content_type = multipart_body([bad])
    response = post(empty, body, content_type)
    assert response.status_code == 400
    assert "SOP Instance UID" in response.headers["Warning"]
    assert post(empty, body, content_type, path="/studies/1.2.x").status_code == 400
    assert post(empty, body, content_type, path="/studies/1..2").status_code == 400
    assert_nothing_stored(empty)


def test_study_mismatch_is_409(empty, testdata) -> None:
    body, content_type = multipart_body([(testdata / LABEL).read_bytes()])
    response = post(empty, body, content_type, path="/studies/1.2.3.4")
    assert response.status_code == 409
    failed = response.json()["00081198"]["Value"][0]
    assert failed["00081197"]["Value"] == [0xA901]
    assert "not to the target study 1.2.3.4" in response.headers["Warning"]
    assert_nothing_stored(empty)
    study = read(testdata / LABEL).StudyInstanceUID
    response = post(empty, body, content_type, path=f"/studies/{study}")
    assert response.status_code == 200
    assert response.json()["00081190"]["Value"] == [f"{empty.url}/studies/{study}"]


def test_duplicate_is_rejected_and_original_kept(empty, testdata) -> None:
    path = testdata / LABEL
    body, content_type = multipart_body([path.read_bytes()])
    assert post(empty, body, content_type).status_code == 200
    before = state(empty)
    altered = changed_copy(path, PatientName="Changed^Name")
    body2, _ = multipart_body([altered])
    response = post(empty, body2, content_type)
    assert response.status_code == 409
    assert response.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0x0111]
    assert state(empty) == before
    dataset = read(path)
    url = (
        f"{empty.url}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )
    got = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert got.content == path.read_bytes()


def test_overwrite_policy_replaces(fresh_server, testdata) -> None:
    server = fresh_server(duplicate_policy="overwrite")
    path = testdata / LABEL
    body, content_type = multipart_body([path.read_bytes()])
    assert post(server, body, content_type).status_code == 200
    altered = changed_copy(path, PatientName="Changed^Name")
    body2, _ = multipart_body([altered])
    assert post(server, body2, content_type).status_code == 200
    count, files, staged = state(server)
    assert (count, len(files), staged) == (1, 1, [])
    dataset = read(path)
    url = (
        f"{server.url}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )
    got = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert got.content == altered
    metadata = requests.get(url + "/metadata").json()[0]
    assert metadata["00100010"]["Value"] == [{"Alphabetic": "Changed^Name"}]


def test_oversized_request_is_413(fresh_server, testdata) -> None:
    server = fresh_server(max_request_bytes="50000")
    data = (testdata / CAMELYON).read_bytes()  # 114 kB
    body, content_type = multipart_body([data])
    response = post(server, body, content_type)
    assert response.status_code == 413
    assert "50000" in response.json()["error"]
    # Without Content-Length (chunked), the limit is enforced while reading.
    chunks = iter([body[i : i + 8192] for i in range(0, len(body), 8192)])
    response = requests.post(
        server.url + "/studies", data=chunks, headers={"Content-Type": content_type}
    )
    assert response.status_code == 413
    assert_nothing_stored(server)


def test_xml_response_when_asked(empty, testdata) -> None:
    body, content_type = multipart_body([(testdata / LABEL).read_bytes()])
    response = post(empty, body, content_type, Accept="application/dicom+xml")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/dicom+xml")
    root = ET.fromstring(response.content)
    ns = {"d": "http://dicom.nema.org/PS3.19/models/NativeDICOM"}
    sequence = root.find("d:DicomAttribute[@tag='00081199']", ns)
    assert sequence is not None and sequence.get("vr") == "SQ"
    uid = sequence.find("d:Item/d:DicomAttribute[@tag='00081155']/d:Value", ns)
    assert uid is not None and uid.text == pydicom.dcmread(testdata / LABEL).SOPInstanceUID


def test_single_part_application_dicom_body(empty, testdata) -> None:
    data = (testdata / LABEL).read_bytes()
    response = post(empty, data, "application/dicom")
    assert response.status_code == 200
    assert state(empty)[0] == 1
