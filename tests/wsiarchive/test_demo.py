"""The demo study's logic in process: where its test data is, the rewritten X-ray, and that
it is loaded once (an archive that is not empty, an X-ray another server holds)."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian

from storage.config import DuplicatePolicy
from storage.dicom.uids import validate_uid
from tests.inprocess import client, open_at, settings_for, store
from wsiarchive import demo
from wsiarchive.settings import Settings


def _instances(archive, settings) -> list[dict]:  # type: ignore[no-untyped-def]
    response = client(archive, settings).get("/dicomweb/instances")
    assert response.status_code == 200
    return response.get_json() or []


def test_the_test_data_comes_from_the_setting_then_the_variable_then_beside_the_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(demo.TESTDATA_VARIABLE, str(tmp_path / "variable"))
    assert demo.testdata_folder(Settings(demo_data=str(tmp_path / "set"))) == tmp_path / "set"
    assert demo.testdata_folder(Settings()) == tmp_path / "variable"
    monkeypatch.delenv(demo.TESTDATA_VARIABLE)
    checkout = Path(__file__).resolve().parents[2]
    assert demo.testdata_folder(Settings()) == checkout.parent / "shared" / "testdata"


def test_missing_test_data_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "wsiarchive.demo"):
        assert demo.sources(Settings(demo_data=str(tmp_path))) is None
    assert str(tmp_path / demo.SLIDE) in caplog.text
    assert str(tmp_path / demo.XRAY) in caplog.text


def test_the_x_ray_gets_the_demo_patient_and_new_uids_but_keeps_its_pixels(
    testdata: Path, tmp_path: Path
) -> None:
    source = testdata / demo.XRAY
    original = pydicom.dcmread(source, force=True)
    rewritten = demo.xray_dataset(source, "20261203")
    assert rewritten.PixelData == original.PixelData
    assert (rewritten.PatientName, rewritten.PatientID) == ("Demo^Patient", "DEMO-0001")
    assert rewritten.StudyDescription.startswith("Demo:")
    uids = [rewritten.StudyInstanceUID, rewritten.SeriesInstanceUID, rewritten.SOPInstanceUID]
    assert original.SOPInstanceUID not in uids and original.SeriesInstanceUID not in uids
    for uid in uids:
        validate_uid(str(uid), "demo UID")
        assert str(uid).startswith("2.25.")
    assert demo.demo_uid("study") == rewritten.StudyInstanceUID  # fixed, not random
    assert not [e for e in rewritten if e.tag.element == 0]  # no group lengths
    for keyword in ("InstanceCreationDate", "AcquisitionDate", "StudyDate"):
        assert re.fullmatch(r"\d{8}", str(getattr(rewritten, keyword)))
    for keyword in ("InstanceCreationTime", "AcquisitionTime"):
        assert re.fullmatch(r"\d{6}", str(getattr(rewritten, keyword)))
    path = tmp_path / "x-ray.dcm"
    rewritten.save_as(path, enforce_file_format=True)
    written = pydicom.dcmread(path)  # a Part-10 file now: preamble and File Meta
    assert written.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert written.PixelData == original.PixelData
    assert written.pixel_array.shape == (440, 440)
    # A valid CR Image now (the ACR-NEMA values repaired): dciodvfy finds no error.
    checked = subprocess.run(
        [str(Path(sys.executable).with_name("dciodvfy")), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    output = checked.stdout + checked.stderr
    assert "CRImage" in output
    assert [line for line in output.splitlines() if line.startswith("Error")] == []


def test_it_is_loaded_into_an_empty_archive_once(testdata: Path, tmp_path: Path) -> None:
    archive, settings = open_at(tmp_path / "archive")
    found = demo.Sources(testdata / demo.SLIDE, testdata / demo.XRAY)
    try:
        assert demo.load(archive, found, settings) is demo.Result.LOADED
        listed = _instances(archive, settings)
        assert len(listed) == 8  # the X-ray and the slide's 7 instances (no thumbnail)
        assert {item["00100020"]["Value"][0] for item in listed} == {demo.PATIENT_ID}
        assert {item["0020000D"]["Value"][0] for item in listed} == {demo.STUDY_UID}
        assert demo.load(archive, found, settings) is demo.Result.NOT_EMPTY
        assert len(_instances(archive, settings)) == 8
    finally:
        archive.close()
    assert not list((tmp_path / "archive" / "blobs").rglob("x-ray.dcm"))  # workspace gone


def test_an_x_ray_stored_by_another_server_stops_the_load_whole(
    testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other server stored the X-ray after this one found the archive empty.
    archive, settings = open_at(tmp_path / "archive", duplicate_policy=DuplicatePolicy.REJECT)
    found = demo.Sources(testdata / demo.SLIDE, testdata / demo.XRAY)
    try:
        store(archive, demo.xray_dataset(found.xray, "20261203"))
        monkeypatch.setattr(demo, "is_empty", lambda _archive: True)
        assert demo.load(archive, found, settings) is demo.Result.LOADED_ELSEWHERE
        listed = _instances(archive, settings)
        assert [item["00080018"]["Value"][0] for item in listed] == [demo.XRAY_INSTANCE_UID]
    finally:
        archive.close()


def test_a_serve_with_the_demo_off_starts_nothing(tmp_path: Path) -> None:
    settings = replace(settings_for(tmp_path), demo_study=False)
    assert demo.start(settings) is None


def test_is_empty_sees_every_access_group(testdata: Path, tmp_path: Path) -> None:
    # The X-ray's InstitutionName makes it a study of its own access group.
    archive, _ = open_at(tmp_path / "archive", access_group_attribute="InstitutionName")
    try:
        assert demo.is_empty(archive)
        store(archive, demo.xray_dataset(testdata / demo.XRAY, "20261203"))
        assert not demo.is_empty(archive)
    finally:
        archive.close()
