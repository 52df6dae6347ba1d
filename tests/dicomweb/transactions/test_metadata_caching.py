"""Validators on WADO-RS metadata (RFC 9110 §8.8, §13.1.2): a viewer that opens a slide again
revalidates the series metadata and gets 304 without a body; a series that gains an instance,
or an instance stored again, answers 200 with the new metadata; JSON and XML, gzip or not,
never share a representation wrongly."""

from __future__ import annotations

import gzip

from pydicom.uid import generate_uid

from tests.inprocess import client, multiframe, open_at, store

JSON = {"Accept": "application/dicom+json"}
XML = {"Accept": 'multipart/related; type="application/dicom+xml"'}


def _series(empty_web):  # type: ignore[no-untyped-def]
    archive, client = empty_web
    first = multiframe(2)
    stored = store(archive, first)
    return archive, client, first, f"/dicomweb/studies/{stored.study}/series/{stored.series}"


def test_series_metadata_revalidates_with_304(empty_web) -> None:
    _, client, _, series = _series(empty_web)
    first = client.get(series + "/metadata", headers=JSON)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')  # weak: gzip and identity bodies share it (§8.8.1)
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert "Accept" in first.headers["Vary"]
    again = client.get(series + "/metadata", headers={**JSON, "If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["ETag"] == etag
    # Another tag gets the body.
    other = client.get(series + "/metadata", headers={**JSON, "If-None-Match": 'W/"x"'})
    assert other.status_code == 200 and other.json == first.json


def test_a_new_instance_or_a_restore_changes_the_tag(tmp_path) -> None:
    archive, settings = open_at(tmp_path / "archive", duplicate_policy="overwrite")
    try:
        _grows_and_changes(*_series((archive, client(archive, settings))))
    finally:
        archive.close()


def _grows_and_changes(archive, client, first, series) -> None:  # type: ignore[no-untyped-def]
    etag = client.get(series + "/metadata", headers=JSON).headers["ETag"]
    second = multiframe(3, seed=2)
    second.StudyInstanceUID, second.SeriesInstanceUID = (
        first.StudyInstanceUID,
        first.SeriesInstanceUID,
    )
    second.SOPInstanceUID = second.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    store(archive, second)
    grown = client.get(series + "/metadata", headers={**JSON, "If-None-Match": etag})
    assert grown.status_code == 200 and len(grown.json) == 2
    assert grown.headers["ETag"] != etag
    # The same instance stored again (a new blob) is new metadata too.
    first.PatientName = "Changed^Name"
    store(archive, first)
    changed = client.get(
        series + "/metadata", headers={**JSON, "If-None-Match": grown.headers["ETag"]}
    )
    assert changed.status_code == 200
    names = {d["00100010"]["Value"][0]["Alphabetic"] for d in changed.json}
    assert "Changed^Name" in names


def test_xml_and_gzip_are_told_apart(empty_web) -> None:
    _, client, _, series = _series(empty_web)
    as_json = client.get(series + "/metadata", headers=JSON)
    as_xml = client.get(series + "/metadata", headers=XML)
    assert as_xml.status_code == 200 and as_xml.mimetype == "multipart/related"
    assert as_xml.headers["ETag"] != as_json.headers["ETag"]
    revalidated = client.get(
        series + "/metadata", headers={**XML, "If-None-Match": as_xml.headers["ETag"]}
    )
    assert revalidated.status_code == 304
    # A JSON tag does not validate the XML representation.
    crossed = client.get(
        series + "/metadata", headers={**XML, "If-None-Match": as_json.headers["ETag"]}
    )
    assert crossed.status_code == 200
    zipped = client.get(series + "/metadata", headers={**JSON, "Accept-Encoding": "gzip"})
    if zipped.headers.get("Content-Encoding") == "gzip":  # bodies under 1 KiB stay plain
        assert gzip.decompress(zipped.get_data()) == as_json.get_data()
    assert zipped.headers["ETag"] == as_json.headers["ETag"]
    assert "Accept-Encoding" in zipped.headers["Vary"]
