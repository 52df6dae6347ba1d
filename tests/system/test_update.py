"""Correcting attributes after ingest on a real server: a slide and a CR of one study get the
LIS's patient and study attributes (POST /studies/$bulkUpdate) and the slide series its
container (`wsiarchive update`); QIDO, WADO-RS, frames, the change feed and the audit trail
show it, and a reader of frames during the correction sees no error."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ImplicitVRLittleEndian

from tests.dicomfiles import parse_multipart
from tests.inprocess import part10

DICOM = "application/dicom"
WRITER = {"anonymous_scopes": "read write"}
OCTETS = {"Accept": 'multipart/related; type="application/octet-stream"'}


def _cli(*arguments: str) -> tuple[int, str]:
    from wsiarchive.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(arguments))
    return status, out.getvalue()


def _frame(url: str) -> bytes:
    answer = requests.get(url, headers=OCTETS, timeout=30)
    assert answer.status_code == 200, answer.text
    parts = parse_multipart(answer.headers["Content-Type"], answer.content)
    return parts[0][1]


def _all_frames(url: str, count: int) -> list[bytes]:
    """Every frame of an instance in one multipart response (read frame by frame as sent)."""
    numbers = ",".join(str(n) for n in range(1, count + 1))
    answer = requests.get(f"{url}/frames/{numbers}", headers=OCTETS, timeout=30)
    assert answer.status_code == 200, answer.text
    return [body for _, body in parse_multipart(answer.headers["Content-Type"], answer.content)]


def _instance(url: str) -> pydicom.Dataset:
    answer = requests.get(url, headers={"Accept": DICOM}, timeout=30)
    assert answer.status_code == 200, answer.text
    return pydicom.dcmread(io.BytesIO(answer.content))


def _studies(server, **query: str) -> list[str]:  # type: ignore[no-untyped-def]
    answer = requests.get(f"{server.url}/studies", params=query, timeout=30)
    assert answer.status_code in (200, 204), answer.text
    return [item["0020000D"]["Value"][0] for item in (answer.json() if answer.content else [])]


@pytest.fixture(params=["sqlite", "postgresql"])
def index_url(request):  # type: ignore[no-untyped-def]
    """ "" (SQLite under the data directory) or a new PostgreSQL database of the session's
    cluster."""
    if request.param == "sqlite":
        return ""
    return request.getfixturevalue("postgres").database(f"t{uuid.uuid4().hex[:12]}")


def test_correct_slide_and_cr(fresh_server, testdata, index_url) -> None:  # type: ignore[no-untyped-def]
    database = ["--database-url", index_url] if index_url else []
    server = fresh_server(**WRITER, **({"database_url": index_url} if index_url else {}))
    folder = sorted((testdata / "dicom" / "jcupitt-cmu-1-small-region").glob("*.dcm"))
    slides = [pydicom.dcmread(path) for path in folder]
    study, series = slides[0].StudyInstanceUID, slides[0].SeriesInstanceUID
    # The CR of the same order: the same study as the slide.
    # The CR of the same order (a raw data set without File Meta Information): the slide's
    # study, under the patient ID the modality guessed.
    cr = pydicom.dcmread(
        testdata / "radiology" / "fodicom_CR-MONO1-10-chest.nopreamble", force=True
    )
    cr.file_meta = FileMetaDataset()
    cr.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    cr.file_meta.MediaStorageSOPClassUID = cr.SOPClassUID
    cr.file_meta.MediaStorageSOPInstanceUID = cr.SOPInstanceUID
    old_patient = cr.PatientID = "MODALITY-GUESS"
    cr.StudyInstanceUID = study
    server.store([part10(cr)])  # first: the study's patient is the one it names
    server.store([path.read_bytes() for path in folder])
    urls = {
        item.SOPInstanceUID: f"{server.url}/studies/{study}/series/{item.SeriesInstanceUID}"
        f"/instances/{item.SOPInstanceUID}"
        for item in [*slides, cr]
    }
    frames_before = {uid: _frame(urls[uid] + "/frames/1") for uid in urls}
    assert _studies(server, PatientID=old_patient) == [study]

    # A reader of frames in a loop while the correction runs: each answer old or new, never
    # an error (the pixel data is the same, so each must equal the frame read before).
    # The largest level, all its frames per request: a body begun on the old blob must end
    # on the new one.
    largest = max(slides, key=lambda item: int(item.NumberOfFrames))
    watched, count = largest.SOPInstanceUID, int(largest.NumberOfFrames)
    assert count > 1
    every_before = _all_frames(urls[watched], count)
    stop, seen, errors = threading.Event(), [0], []

    def read_frames() -> None:
        while not stop.is_set():
            try:
                if _all_frames(urls[watched], count) != every_before:
                    errors.append("different frames")
                seen[0] += 1
            except (AssertionError, requests.RequestException) as exc:
                errors.append(str(exc))

    reader = threading.Thread(target=read_frames)
    reader.start()
    while seen[0] == 0 and not errors:
        time.sleep(0.01)
    try:
        started = seen[0]
        body = {
            "studyInstanceUids": [study],
            "changeDataset": {
                "00100020": {"vr": "LO", "Value": ["LIS-4711"]},
                "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
                "00100030": {"vr": "DA", "Value": ["19700101"]},
                "00100040": {"vr": "CS", "Value": ["F"]},
                "00080050": {"vr": "SH", "Value": ["ACC-2026-1"]},
                "00081030": {"vr": "LO", "Value": ["Breast biopsy"]},
                "00080020": {"vr": "DA", "Value": ["20261203"]},
                "00080090": {"vr": "PN", "Value": [{"Alphabetic": "House^Gregory"}]},
                "00200010": {"vr": "SH", "Value": ["S-77"]},
            },
        }
        answer = requests.post(f"{server.url}/studies/$bulkUpdate", json=body, timeout=120)
        assert answer.status_code == 200, answer.text
        assert answer.json()["instancesUpdated"] == {study: len(folder) + 1}
        status, out = _cli(
            "update", study, "--series", series, "--set", "ContainerIdentifier=BLOCK-A1",
            "--data-dir", str(server.data_dir), *database,
        )  # fmt: skip
        assert status == 0 and f"of {len(folder)} instances" in out
        during = seen[0] - started
    finally:
        stop.set()
        reader.join()
    assert errors == [] and during > 0  # frames were read while the objects changed

    # QIDO finds the study by the new values, not by the old.
    assert _studies(server, PatientID="LIS-4711") == [study]
    assert _studies(server, PatientID=old_patient) == []
    assert _studies(server, AccessionNumber="ACC-2026-1") == [study]
    assert _studies(server, PatientName="Doe^Jane") == [study]
    assert _studies(server, StudyDescription="Breast biopsy", StudyDate="20261203") == [study]
    answer = requests.get(
        f"{server.url}/studies/{study}/instances", params={"ContainerIdentifier": "BLOCK-A1"}
    )
    assert answer.status_code == 200 and len(answer.json()) == len(folder)

    # WADO-RS: the new header, the same pixel data and frames, the same SOP Instance UIDs.
    for original in [*slides, cr]:
        uid = original.SOPInstanceUID
        got = _instance(urls[uid])
        assert got.SOPInstanceUID == uid and got.PatientID == "LIS-4711"
        assert str(got.PatientName) == "Doe^Jane" and got.AccessionNumber == "ACC-2026-1"
        assert (got.PatientBirthDate, got.PatientSex, got.StudyID) == ("19700101", "F", "S-77")
        assert str(got.ReferringPhysicianName) == "House^Gregory"
        assert got.PixelData == original.PixelData
        if original.Modality == "SM":
            assert got.ContainerIdentifier == "BLOCK-A1"
        else:
            assert "ContainerIdentifier" not in got
        assert _frame(urls[uid] + "/frames/1") == frames_before[uid]

    # The change feed: one update event per instance and correction.
    feed = requests.get(
        f"{server.url}/changefeed", params={"includeMetadata": "false", "limit": "200"}
    ).json()
    updates = Counter(e["SopInstanceUid"] for e in feed if e["Action"] == "update")
    assert updates == {**{item.SOPInstanceUID: 2 for item in slides}, cr.SOPInstanceUID: 1}

    # The audit trail: both corrections, naming the attributes, not the values.
    status, out = _cli(
        "audit", "--operation", "update", "--json", "--data-dir", str(server.data_dir), *database
    )
    rows = json.loads(out)
    assert status == 0 and len(rows) == 2
    assert {row["series"] for row in rows} == {"", series}
    assert all(row["study"] == study and row["success"] for row in rows)
    assert any("PatientID" in row["detail"] for row in rows)
    assert not any("LIS-4711" in row["detail"] for row in rows)


def test_refused_before_touching(fresh_server, testdata) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server(**WRITER)
    path: Path = testdata / "dicom" / "wsi2dcm_jpeg.dcm"
    server.store([path.read_bytes()])
    original = pydicom.dcmread(path, stop_before_pixels=True)
    body = {
        "studyInstanceUids": [original.StudyInstanceUID],
        "changeDataset": {"00100030": {"vr": "DA", "Value": ["1970-01-01"]}},
    }
    answer = requests.post(f"{server.url}/studies/$bulkUpdate", json=body, timeout=30)
    assert answer.status_code == 400 and "PatientBirthDate" in answer.text
    status, _ = _cli(
        "update", original.StudyInstanceUID, "--set", "StudyInstanceUID=1.2.3",
        "--data-dir", str(server.data_dir),
    )  # fmt: skip
    assert status == 2
    feed = requests.get(f"{server.url}/changefeed", params={"includeMetadata": "false"}).json()
    assert [e["Action"] for e in feed] == ["create"]


def test_a_request_is_checked_whole_and_metadata_revalidates(fresh_server, testdata) -> None:  # type: ignore[no-untyped-def]
    """A request naming a second study that is not stored, or whose UID is no UID, corrects
    not even the first; a correction then changes the metadata's ETag, so that a viewer
    revalidating with the old one gets the new values (200, not 304)."""
    server = fresh_server(**WRITER)
    path: Path = testdata / "dicom" / "wsi2dcm_jpeg.dcm"
    server.store([path.read_bytes()])
    original = pydicom.dcmread(path, stop_before_pixels=True)
    study = original.StudyInstanceUID
    url = (
        f"{server.url}/studies/{study}/series/{original.SeriesInstanceUID}"
        f"/instances/{original.SOPInstanceUID}"
    )
    metadata = requests.get(f"{server.url}/studies/{study}/metadata", timeout=30)
    etag = metadata.headers["ETag"]
    change = {"00100020": {"vr": "LO", "Value": ["LIS-1"]}}
    for second, status in (("1.2.826.0.1.3680043.8.498.999", 404), ("1.2.x", 400)):
        body = {"studyInstanceUids": [study, second], "changeDataset": change}
        answer = requests.post(f"{server.url}/studies/$bulkUpdate", json=body, timeout=30)
        assert answer.status_code == status, answer.text
        assert second in answer.json()["error"]
        assert _instance(url).get("PatientID") == original.get("PatientID")
    feed = requests.get(f"{server.url}/changefeed", params={"includeMetadata": "false"}).json()
    assert [e["Action"] for e in feed] == ["create"]
    same = requests.get(
        f"{server.url}/studies/{study}/metadata", headers={"If-None-Match": etag}, timeout=30
    )
    assert same.status_code == 304
    body = {"studyInstanceUids": [study], "changeDataset": change}
    answer = requests.post(f"{server.url}/studies/$bulkUpdate", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    again = requests.get(
        f"{server.url}/studies/{study}/metadata", headers={"If-None-Match": etag}, timeout=30
    )
    assert again.status_code == 200 and again.headers["ETag"] != etag
    assert again.json()[0]["00100020"]["Value"] == ["LIS-1"]
    assert _studies(server, PatientID="LIS-1") == [study]


def test_a_server_killed_during_a_correction_leaves_all_or_nothing(tmp_path, testdata) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL while a study of 12 instances is being corrected, at several moments: after
    the restart (whose recovery releases the claims) every instance has the old Patient ID
    or every one the new, each read from its blob, and the correction then succeeds."""
    from tests.servers import ArchiveServer

    folder = sorted((testdata / "dicom" / "jcupitt-cmu-1-small-region").glob("*.dcm"))
    study = pydicom.dcmread(folder[0], stop_before_pixels=True).StudyInstanceUID
    body = {
        "studyInstanceUids": [study],
        "changeDataset": {"00100020": {"vr": "LO", "Value": ["LIS-K"]}},
    }
    outcomes = set()
    for delay in (0.05, 0.15, 0.3, 0.6):
        server = ArchiveServer(tmp_path / f"data-{delay}", settings=dict(WRITER)).start()
        server.store([path.read_bytes() for path in folder])
        before = {
            i["00080018"]["Value"][0]
            for i in requests.get(f"{server.url}/studies/{study}/instances", timeout=30).json()
        }

        def post(url: str = server.url) -> None:
            with contextlib.suppress(requests.RequestException):
                requests.post(f"{url}/studies/$bulkUpdate", json=body, timeout=60)

        poster = threading.Thread(target=post)
        poster.start()
        time.sleep(delay)
        server.kill()
        poster.join()
        restarted = ArchiveServer(server.data_dir, settings=dict(WRITER)).start()
        try:
            metadata = requests.get(f"{restarted.url}/studies/{study}/metadata", timeout=30)
            assert metadata.status_code == 200
            ids = {(item.get("00100020", {}).get("Value") or [""])[0] for item in metadata.json()}
            assert len(metadata.json()) == len(before) and len(ids) == 1, ids
            outcomes |= ids
            for item in metadata.json():  # every instance readable from its blob
                uid = item["00080018"]["Value"][0]
                series = item["0020000E"]["Value"][0]
                got = _instance(f"{restarted.url}/studies/{study}/series/{series}/instances/{uid}")
                assert got.get("PatientID", "") == next(iter(ids))
            answer = requests.post(f"{restarted.url}/studies/$bulkUpdate", json=body, timeout=120)
            assert answer.status_code == 200, answer.text
            assert _studies(restarted, PatientID="LIS-K") == [study]
        finally:
            restarted.stop()
    print("outcomes after the kills:", outcomes)
