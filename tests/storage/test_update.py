"""Correcting attributes after ingest, in process: the values checked by VR before anything
changes, the header rewritten around byte-identical pixel data, the index and the change feed,
the audit record, specimen items merged, and a crash before the commit undone by recovery."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.dataset import Dataset

from storage import update as updating
from storage.audit import AuditQuery, Operation
from storage.config import DuplicatePolicy
from storage.dicom.corrections import from_assignments, from_json
from storage.errors import BlobMissing, InvalidRequest, NotFound
from storage.ingest import Storing
from tests.inprocess import TESTER, multiframe, store

BULK = "/dicomweb/studies/$bulkUpdate"


def _blob(archive, record) -> Dataset:  # type: ignore[no-untyped-def]
    with archive.local_file(record) as path:
        return pydicom.dcmread(path)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"0020000D": {"vr": "UI", "Value": ["1.2.3"]}}, "cannot be corrected"),
        ({"00080060": {"vr": "CS", "Value": ["SM"]}}, "cannot be corrected"),
        ({"00100020": {"vr": "PN", "Value": [{"Alphabetic": "x"}]}}, "must have VR LO"),
        ({"00100030": {"vr": "DA", "Value": ["20231399"]}}, "Invalid value for VR DA"),
        ({"00100030": {"vr": "DA", "Value": ["20230230"]}}, "not a date"),
        ({"00100030": {"vr": "DA", "Value": ["2023-01-01"]}}, "PatientBirthDate"),
        ({"00100040": {"vr": "CS", "Value": ["X"]}}, "not one of M, F, O"),
        ({"00100020": {"vr": "LO", "Value": ["a", "b"]}}, "one value"),
        ({"00100020": {"vr": "LO", "Value": ["x" * 65]}}, "PatientID"),
        ({"00080050": {"vr": "SH", "Value": ["a\\b"]}}, "AccessionNumber"),
        (
            {"00400560": {"vr": "SQ", "Value": [{"0040A124": {"vr": "UI", "Value": ["1.2"]}}]}},
            "UIDs cannot be changed",
        ),
        ({"zz": {"vr": "LO"}}, "8 hex digits"),
        ({}, "non-empty"),
    ],
)
def test_refused_values(document, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRequest, match=reason):
        from_json(document)


def test_assignments() -> None:
    correction = from_assignments(["PatientName=Doe^Jane", "PatientID=123", "StudyDate="])
    assert correction.keywords == ["StudyDate", "PatientName", "PatientID"]  # tag order
    assert str(correction.dataset.PatientName) == "Doe^Jane"
    with pytest.raises(InvalidRequest, match="KEYWORD=VALUE"):
        from_assignments(["NoSuchKeyword=1"])
    with pytest.raises(InvalidRequest, match="sequence"):
        from_assignments(["SpecimenDescriptionSequence=1"])


def test_update_study_in_process(empty_web, testdata) -> None:  # type: ignore[no-untyped-def]
    archive, client = empty_web
    slide = store(archive, (testdata / "dicom" / "wsi2dcm_jpeg.dcm").read_bytes())
    before = archive.records(slide.study, who=TESTER)[0]
    frames = [archive.frames(before).read(n) for n in range(1, before.number_of_frames + 1)]
    original = _blob(archive, before)
    body = {
        "studyInstanceUids": [slide.study],
        "changeDataset": {
            "00100020": {"vr": "LO", "Value": ["LIS-123"]},
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
            "00080050": {"vr": "SH", "Value": ["ACC-9"]},
        },
    }
    answer = client.post(BULK, json=body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["instancesUpdated"] == {slide.study: 1}
    after = archive.records(slide.study, who=TESTER)[0]
    assert after.blob_key != before.blob_key and after.instance == before.instance
    assert [archive.frames(after).read(n) for n in range(1, after.number_of_frames + 1)] == frames
    corrected = _blob(archive, after)
    assert (corrected.PatientID, str(corrected.PatientName)) == ("LIS-123", "Doe^Jane")
    assert corrected.AccessionNumber == "ACC-9"
    assert corrected.PixelData == original.PixelData
    assert corrected.SOPInstanceUID == original.SOPInstanceUID
    for keyword in ("Rows", "TotalPixelMatrixColumns", "ImageType", "StudyInstanceUID"):
        assert corrected.get(keyword) == original.get(keyword)
    with pytest.raises(BlobMissing):  # the old blob is gone after the commit
        archive.blob_size(before)
    found = client.get("/dicomweb/studies?PatientID=LIS-123").get_json()
    assert [item["0020000D"]["Value"][0] for item in found] == [slide.study]
    assert client.get("/dicomweb/studies?AccessionNumber=ACC-9").get_json()
    assert client.get("/dicomweb/studies?PatientName=doe*").get_json()
    metadata = client.get(f"/dicomweb/studies/{slide.study}/metadata").get_json()
    assert metadata[0]["00100020"]["Value"] == ["LIS-123"]
    feed = client.get("/dicomweb/changefeed?includeMetadata=false").get_json()
    assert [(e["Action"], e["SopInstanceUid"]) for e in feed] == [
        ("create", slide.instance),
        ("update", slide.instance),
    ]
    audited = archive.audit_events(AuditQuery(operation=Operation.UPDATE), who=TESTER)
    assert len(audited) == 1 and audited[0].study == slide.study and audited[0].success
    assert "PatientID" in audited[0].detail and "LIS-123" not in audited[0].detail
    assert audited[0].patient_id == "LIS-123"


def test_refusals_change_nothing(empty_web, testdata) -> None:  # type: ignore[no-untyped-def]
    archive, client = empty_web
    slide = store(archive, (testdata / "dicom" / "wsi2dcm_jpeg.dcm").read_bytes())
    before = archive.records(slide.study, who=TESTER)[0]
    bad = {"studyInstanceUids": [slide.study], "changeDataset": {"0020000E": {"vr": "UI"}}}
    answer = client.post(BULK, json=bad)
    assert answer.status_code == 400 and "cannot be corrected" in answer.get_data(as_text=True)
    series_patient = {
        "studyInstanceUids": [slide.study],
        "seriesInstanceUids": [slide.series],
        "changeDataset": {"00100020": {"vr": "LO", "Value": ["X"]}},
    }
    answer = client.post(BULK, json=series_patient)
    assert answer.status_code == 400 and "whole study" in answer.get_data(as_text=True)
    unicode = {
        "studyInstanceUids": [slide.study],
        "changeDataset": {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Müller"}]}},
    }
    answer = client.post(BULK, json=unicode)
    assert answer.status_code == 400 and "ISO_IR 192" in answer.get_data(as_text=True)
    assert client.post(BULK, data="x", content_type="text/plain").status_code == 415
    missing = {"studyInstanceUids": ["1.2.3"], "changeDataset": series_patient["changeDataset"]}
    assert client.post(BULK, json=missing).status_code == 404
    assert archive.records(slide.study, who=TESTER)[0].blob_key == before.blob_key
    feed = client.get("/dicomweb/changefeed?includeMetadata=false").get_json()
    assert [e["Action"] for e in feed] == ["create"]


def test_series_specimen_items_merged(empty_archive) -> None:  # type: ignore[no-untyped-def]
    dataset = multiframe(3)
    item = Dataset()
    item.SpecimenIdentifier, item.SpecimenUID = "S-old", "1.2.826.0.1.3680043.8.498.1"
    item.SpecimenShortDescription = "kept"
    dataset.SpecimenDescriptionSequence = [item]
    dataset.ContainerIdentifier = "C-old"
    stored = store(empty_archive, dataset)
    other = multiframe(2, seed=2)
    other.StudyInstanceUID = dataset.StudyInstanceUID
    other.ContainerIdentifier = "C-other"
    second = store(empty_archive, other)
    document = {
        "00400512": {"vr": "LO", "Value": ["C-new"]},
        "00400560": {"vr": "SQ", "Value": [{"00400551": {"vr": "LO", "Value": ["S-new"]}}]},
    }
    count = empty_archive.update(stored.study, (stored.series,), from_json(document), who=TESTER)
    assert count == 1
    record = empty_archive.records(stored.study, stored.series, who=TESTER)[0]
    corrected = _blob(empty_archive, record)
    assert corrected.ContainerIdentifier == "C-new"
    specimen = corrected.SpecimenDescriptionSequence[0]
    assert specimen.SpecimenIdentifier == "S-new"
    assert specimen.SpecimenUID == item.SpecimenUID
    assert specimen.SpecimenShortDescription == "kept"
    assert corrected.PixelData == dataset.PixelData
    untouched = empty_archive.records(stored.study, second.series, who=TESTER)[0]
    assert _blob(empty_archive, untouched).ContainerIdentifier == "C-other"
    too_many = {"00400560": {"vr": "SQ", "Value": [{}, {}]}}
    with pytest.raises(InvalidRequest, match="fewer Specimen Description items"):
        empty_archive.update(stored.study, (stored.series,), from_json(too_many), who=TESTER)


def test_crash_before_commit_is_undone(empty_archive) -> None:  # type: ignore[no-untyped-def]
    """A correction that died after placing its new blob (claims open, nothing committed):
    the start-up recovery removes the new blob and releases the claim; the old object stays
    and a retry then succeeds."""
    dataset = multiframe(2)
    stored = store(empty_archive, dataset)
    record = empty_archive.records(stored.study, who=TESTER)[0]
    correction = from_assignments(["PatientID=NEW"])
    how = Storing(DuplicatePolicy.OVERWRITE, "", TESTER)
    claim, entry = updating._rewritten(
        empty_archive._writer, empty_archive._blobs, how, record, correction
    )
    assert empty_archive._blobs.size(entry.key) > 0
    assert empty_archive.recover() >= 1
    with pytest.raises(BlobMissing):
        empty_archive._blobs.size(entry.key)
    now = empty_archive.records(stored.study, who=TESTER)[0]
    assert now.blob_key == record.blob_key and _blob(empty_archive, now).PatientID == "MF1"
    assert empty_archive.update(stored.study, None, correction, who=TESTER) == 1
    retried = empty_archive.records(stored.study, who=TESTER)[0]
    assert _blob(empty_archive, retried).PatientID == "NEW"


def test_patient_rows_follow_the_correction(empty_web) -> None:  # type: ignore[no-untyped-def]
    """Two studies of one patient: correcting one's Patient ID moves it to a new patient row
    (the other keeps the old); correcting the other too joins them again, and the old row
    (left without studies) is gone."""
    archive, client = empty_web
    first, second = store(archive, multiframe(1, seed=1)), store(archive, multiframe(1, seed=2))

    def studies(**query: str) -> set[str]:
        found = client.get("/dicomweb/studies", query_string=query).get_json() or []
        return {item["0020000D"]["Value"][0] for item in found}

    assert studies(PatientID="MF1") == {first.study, second.study}
    correction = from_assignments(["PatientID=NEW", "PatientName=New^Name"])
    archive.update(first.study, None, correction, who=TESTER)
    assert studies(PatientID="MF1") == {second.study}
    assert studies(PatientID="NEW") == {first.study}
    assert studies(PatientName="Frames^Many") == {second.study}
    archive.update(second.study, None, correction, who=TESTER)
    assert studies(PatientID="NEW") == {first.study, second.study}
    assert studies(PatientID="MF1") == set()
    patients = client.get("/dicomweb/studies", query_string={"PatientName": "New^Name"})
    assert len(patients.get_json()) == 2
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from storage.index.models import Patient

    with Session(archive._database.engine) as session:
        assert session.scalars(select(Patient.patient_id)).all() == ["NEW"]
        assert session.scalar(select(func.count()).select_from(Patient)) == 1


def test_unicode_value_in_utf8_object(empty_web) -> None:  # type: ignore[no-untyped-def]
    archive, client = empty_web
    dataset = multiframe(2)
    dataset.SpecificCharacterSet = "ISO_IR 192"
    stored = store(archive, dataset)
    archive.update(stored.study, None, from_assignments(["PatientName=Müller^Jürgen"]), who=TESTER)
    record = archive.records(stored.study, who=TESTER)[0]
    assert str(_blob(archive, record).PatientName) == "Müller^Jürgen"
    found = client.get("/dicomweb/studies", query_string={"PatientName": "muller*"}).get_json()
    assert [item["00100010"]["Value"][0]["Alphabetic"] for item in found] == ["Müller^Jürgen"]


def test_frames_of_a_body_begun_before_the_correction(empty_archive) -> None:  # type: ignore[no-untyped-def]
    """A multipart body of frames begun on the old blob: frames read after the correction
    removed it come from the new blob, byte-identical (Archive._following)."""
    dataset = multiframe(4)
    stored = store(empty_archive, dataset)
    record = empty_archive.records(stored.study, who=TESTER)[0]
    read = empty_archive.frame_source(record, record.transfer_syntax)
    first = read(1)
    empty_archive.update(stored.study, None, from_assignments(["PatientID=NEW"]), who=TESTER)
    with pytest.raises(BlobMissing):
        empty_archive.blob_size(record)
    assert [first, read(2), read(3), read(4)] == [
        dataset.PixelData[n * 256 : (n + 1) * 256] for n in range(4)
    ]
    empty_archive.delete(stored.study, who=TESTER)
    with pytest.raises(NotFound):
        read(1)


def _state(archive, client, study: str) -> tuple[dict[str, str], list[str]]:  # type: ignore[no-untyped-def]
    """The blob of each instance of *study* and the change feed's actions."""
    blobs = {r.instance: r.blob_key for r in archive.records(study, who=TESTER)}
    feed = client.get("/dicomweb/changefeed?includeMetadata=false").get_json()
    return blobs, [e["Action"] for e in feed]


@pytest.mark.parametrize(
    ("second", "status", "reason"),
    [
        ("not a uid", 400, "not a valid UID"),
        ("1.2.826.0.1.3680043.8.498.999", 404, "no stored study"),
        ("latin1", 400, "ISO_IR 192"),
    ],
)
def test_a_request_of_several_studies_is_checked_whole_first(  # type: ignore[no-untyped-def]
    empty_web, second: str, status: int, reason: str
) -> None:
    """The second study of a request cannot be corrected (its UID is no UID, it is not
    stored, its objects cannot take a non-ASCII value): the first is not corrected either."""
    archive, client = empty_web
    first = multiframe(2, seed=1)
    first.SpecificCharacterSet = "ISO_IR 192"
    stored = store(archive, first)
    if second == "latin1":
        second = store(archive, multiframe(1, seed=2)).study
    before = _state(archive, client, stored.study)
    body = {
        "studyInstanceUids": [stored.study, second],
        "changeDataset": {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Müller"}]}},
    }
    answer = client.post(BULK, json=body)
    assert answer.status_code == status and reason in answer.get_data(as_text=True)
    assert _state(archive, client, stored.study) == before
    assert not archive.audit_events(AuditQuery(operation=Operation.UPDATE), who=TESTER)


def _two_series(archive) -> tuple[Dataset, Dataset]:  # type: ignore[no-untyped-def]
    """A study of two series, of two and one instances, each with a container."""
    first, second = multiframe(2, seed=1), multiframe(2, seed=2)
    first.ContainerIdentifier = second.ContainerIdentifier = "C-old"
    second.StudyInstanceUID = first.StudyInstanceUID
    third = multiframe(1, seed=3)
    third.StudyInstanceUID = first.StudyInstanceUID
    third.SeriesInstanceUID = first.SeriesInstanceUID
    third.ContainerIdentifier = "C-old"
    for dataset in (first, third, second):
        store(archive, dataset)
    return first, second


def test_series_of_one_request_are_corrected_in_one_transaction(empty_web, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """seriesInstanceUids of one study: a series not stored refuses the request before any
    series changes; a failure while rewriting the last instance of the second series leaves
    the first series as it was; then both are corrected, one audit record each."""
    archive, client = empty_web
    first, second = _two_series(archive)
    study = first.StudyInstanceUID
    before = _state(archive, client, study)
    container = {"00400512": {"vr": "LO", "Value": ["C-new"]}}
    missing = {
        "studyInstanceUids": [study],
        "seriesInstanceUids": [first.SeriesInstanceUID, "1.2.826.0.1.3680043.8.498.999"],
        "changeDataset": container,
    }
    assert client.post(BULK, json=missing).status_code == 404
    assert _state(archive, client, study) == before
    real, calls = updating.rewrite, []

    def failing(*args):  # type: ignore[no-untyped-def]
        calls.append(args)
        if len(calls) == 3:
            raise OSError("the disk went away")
        return real(*args)

    monkeypatch.setattr(updating, "rewrite", failing)
    both = {**missing, "seriesInstanceUids": [first.SeriesInstanceUID, second.SeriesInstanceUID]}
    assert client.post(BULK, json=both).status_code == 500
    assert len(calls) == 3 and _state(archive, client, study) == before
    monkeypatch.setattr(updating, "rewrite", real)
    answer = client.post(BULK, json=both)
    assert answer.status_code == 200 and answer.get_json()["instancesUpdated"] == {study: 3}
    for record in archive.records(study, who=TESTER):
        assert _blob(archive, record).ContainerIdentifier == "C-new"
    audited = archive.audit_events(AuditQuery(operation=Operation.UPDATE), who=TESTER)
    done = sorted(event.series for event in audited if event.success)
    assert done == sorted([first.SeriesInstanceUID, second.SeriesInstanceUID])


def test_an_instance_failing_midway_leaves_the_study_as_it_was(empty_web, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The second of three instances cannot be rewritten: no instance changes, no change
    feed event, no new blob remains, no claim stays open (a retry succeeds), and the failed
    attempt is audited."""
    archive, client = empty_web
    first, _ = _two_series(archive)
    study = first.StudyInstanceUID
    before = _state(archive, client, study)
    etag = client.get(f"/dicomweb/studies/{study}/metadata").headers["ETag"]
    real, calls = updating.rewrite, []

    def failing(*args):  # type: ignore[no-untyped-def]
        calls.append(args)
        if len(calls) == 2:
            raise OSError("the disk went away")
        return real(*args)

    monkeypatch.setattr(updating, "rewrite", failing)
    correction = from_assignments(["PatientID=NEW"])
    with pytest.raises(OSError):
        archive.update(study, None, correction, who=TESTER)
    assert _state(archive, client, study) == before
    blobs = archive._blobs.root  # type: ignore[attr-defined]
    assert sorted(p.name for p in blobs.rglob("*.dcm")) == sorted(
        key.rsplit("/", 1)[-1] for key in before[0].values()
    )
    assert not client.get("/dicomweb/studies?PatientID=NEW").get_json()
    [failed] = archive.audit_events(AuditQuery(operation=Operation.UPDATE), who=TESTER)
    assert not failed.success and "not corrected" in failed.detail
    monkeypatch.setattr(updating, "rewrite", real)
    assert archive.update(study, None, correction, who=TESTER) == 3
    again = client.get(f"/dicomweb/studies/{study}/metadata", headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["ETag"] != etag
    assert {item["00100020"]["Value"][0] for item in again.get_json()} == {"NEW"}
