"""HTTP semantics around WADO-RS: validators and 304 (RFC 9110 §13), Cache-Control, Range
requests on bulk data and instances (§14), gzip of metadata and search results (§8.4)."""

from __future__ import annotations

import gzip
import json
import warnings

import pydicom
import pytest
import requests

from tests.dicomfiles import frames, read

JPEG = "dicom/wsi2dcm_jpeg.dcm"
NATIVE = "dicom/wsi2dcm_raw.dcm"
WITH_ICC = "tiny-synthetic"


@pytest.fixture(scope="module")
def archive(fresh_server_module, testdata):
    server = fresh_server_module(cache_max_age="3600")
    files = [testdata / JPEG, testdata / NATIVE, next((testdata / WITH_ICC).rglob("sm_image.dcm"))]
    server.store([path.read_bytes() for path in files])
    return server


def _url(server, dataset: pydicom.Dataset) -> str:
    return (
        f"{server.url}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )


def test_frames_carry_validators_and_revalidate(archive, testdata) -> None:
    url = _url(archive, read(testdata / JPEG)) + "/frames/1"
    accept = {"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"}
    first = requests.get(url, headers=accept)
    assert first.status_code == 200
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert etag.startswith('"') and not etag.startswith("W/")  # strong: same bytes each time
    assert first.headers["Cache-Control"] == "private, max-age=3600"
    assert "Accept" in first.headers["Vary"]
    again = requests.get(url, headers={**accept, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    assert requests.get(url, headers={**accept, "If-None-Match": '"other"'}).status_code == 200
    assert requests.get(url, headers={**accept, "If-None-Match": "*"}).status_code == 304
    assert requests.get(url, headers={**accept, "If-Modified-Since": modified}).status_code == 304
    earlier = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert requests.get(url, headers={**accept, "If-Modified-Since": earlier}).status_code == 200
    # If-None-Match wins over If-Modified-Since (§13.2.2).
    both = {**accept, "If-None-Match": '"other"', "If-Modified-Since": modified}
    assert requests.get(url, headers=both).status_code == 200
    second = requests.get(url, headers=accept)
    assert second.content == first.content and second.headers["ETag"] == etag


def test_range_on_a_bulk_data_value(archive, testdata) -> None:
    path = next((testdata / WITH_ICC).rglob("sm_image.dcm"))
    dataset = read(path)
    profile = bytes(dataset.OpticalPathSequence[0].ICCProfile)
    url = _url(archive, dataset) + "/bulkdata/00480105/0/00282000"
    octets = {"Accept": "application/octet-stream"}
    whole = requests.get(url, headers=octets)
    assert whole.status_code == 200 and whole.content == profile
    assert whole.headers["Accept-Ranges"] == "bytes"
    part = requests.get(url, headers={**octets, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == profile[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(profile)}"
    tail = requests.get(url, headers={**octets, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == profile[-10:]
    rest = requests.get(url, headers={**octets, "Range": f"bytes={len(profile) - 5}-"})
    assert rest.content == profile[-5:]
    beyond = requests.get(url, headers={**octets, "Range": f"bytes={len(profile)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(profile)}"
    # Ranges the server does not use are ignored: the whole value comes back.
    for ignored in ("bytes=0-1,5-9", "lines=1-2", "bytes=9-1"):
        response = requests.get(url, headers={**octets, "Range": ignored})
        assert response.status_code == 200 and response.content == profile, ignored
    # If-Range: the range only if the representation is still the one the client has.
    etag = whole.headers["ETag"]
    same = requests.get(url, headers={**octets, "Range": "bytes=0-9", "If-Range": etag})
    assert same.status_code == 206 and same.content == profile[:10]
    changed = requests.get(url, headers={**octets, "Range": "bytes=0-9", "If-Range": '"x"'})
    assert changed.status_code == 200 and changed.content == profile


def test_range_on_native_pixel_data(archive, testdata) -> None:
    dataset = read(testdata / NATIVE)
    pixel_data = b"".join(frames(testdata / NATIVE))
    url = _url(archive, dataset) + "/bulkdata/7FE00010"
    octets = {"Accept": "application/octet-stream"}
    whole = requests.get(url, headers=octets)
    assert whole.status_code == 200 and whole.content == pixel_data
    start = len(pixel_data) // 2
    part = requests.get(url, headers={**octets, "Range": f"bytes={start}-{start + 4095}"})
    assert part.status_code == 206 and part.content == pixel_data[start : start + 4096]


def test_range_resumes_an_instance_download(archive, testdata) -> None:
    stored = (testdata / JPEG).read_bytes()
    url = _url(archive, read(testdata / JPEG))
    accept = {"Accept": "application/dicom; transfer-syntax=*"}
    head = requests.get(url, headers={**accept, "Range": "bytes=0-999"})
    assert head.status_code == 206 and head.content == stored[:1000]
    rest = requests.get(url, headers={**accept, "Range": "bytes=1000-"})
    assert head.content + rest.content == stored
    assert rest.headers["Content-Range"] == f"bytes 1000-{len(stored) - 1}/{len(stored)}"


def test_metadata_and_searches_are_gzipped_when_accepted(archive, testdata) -> None:
    dataset = read(testdata / JPEG)
    study = f"{archive.url}/studies/{dataset.StudyInstanceUID}"
    for url in (study + "/metadata", archive.url + "/instances?includefield=all"):
        raw = requests.get(url, headers={"Accept-Encoding": "gzip"}, stream=True)
        body = raw.raw.read()
        assert raw.headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in raw.headers["Vary"]
        plain = requests.get(url, headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers
        assert json.loads(gzip.decompress(body)) == plain.json()
        assert len(body) < len(plain.content)
    refused = requests.get(study + "/metadata", headers={"Accept-Encoding": "gzip;q=0, *"})
    assert "Content-Encoding" not in refused.headers
    # Pixel data is never gzipped.
    frame = requests.get(
        _url(archive, dataset) + "/frames/1",
        headers={"Accept-Encoding": "gzip", "Accept": "image/jpeg; transfer-syntax=*"},
    )
    assert "Content-Encoding" not in frame.headers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert frame.content == frames(testdata / JPEG)[0]


@pytest.mark.parametrize(
    "method,path",
    [("DELETE", "/studies"), ("POST", "/studies/1.2.3/series/1.2.4"), ("PUT", "/series")],
)
def test_methods_a_resource_lacks_get_405_with_allow(archive, method, path) -> None:
    """RFC 9110 §15.5.6: a 405 names the methods the resource supports. Before: no Allow."""
    response = requests.request(method, archive.url + path)
    assert response.status_code == 405
    allowed = {name.strip() for name in response.headers["Allow"].split(",")}
    assert method not in allowed and "GET" in allowed and "OPTIONS" in allowed
    assert ("POST" in allowed) == (path == "/studies")


def test_warning_texts_are_quoted_strings(archive) -> None:
    """RFC 9110 §5.6.4: a '"' in a Warning text is escaped. Before: it ended the text."""
    from tests.http_fields import parse_warnings

    response = requests.get(archive.url + '/studies?Odd"Key=1')
    assert response.status_code == 200
    ((code, _, text),) = parse_warnings(response.headers["Warning"])
    assert code == 299 and text.endswith('ignored: Odd"Key')
