"""WADO-RS edge cases: 404 / 400 / 406 as PS3.18 prescribes, negotiation, XML metadata."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import requests

from tests.dicomfiles import frames, multipart_body, parse_multipart, read

JPEG = "dicom/wsi2dcm_jpeg.dcm"
J2K = "dicom/wsi2dcm_jpeg2000.dcm"
NATIVE = "dicom/wsi2dcm_raw.dcm"
NS = {"d": "http://dicom.nema.org/PS3.19/models/NativeDICOM"}


@pytest.fixture(scope="module")
def archive(fresh_server_module, testdata):
    server = fresh_server_module()
    server.store([(testdata / name).read_bytes() for name in (JPEG, J2K, NATIVE)])
    return server


def url(server, testdata, name: str) -> str:
    dataset = read(testdata / name)
    return (
        f"{server.url}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )


def test_unknown_resources_are_404(archive, testdata) -> None:
    study = read(testdata / JPEG).StudyInstanceUID
    for path in (
        "/studies/1.2.3.999",
        "/studies/1.2.3.999/metadata",
        f"/studies/{study}/series/1.2.3.999",
        f"/studies/{study}/series/1.2.3.999/instances/1.2.3.4/frames/1",
    ):
        response = requests.get(archive.url + path)
        assert response.status_code == 404, path
        assert response.json()["status"] == 404
        assert "1.2.3.999" in response.json()["error"]


def test_malformed_uids_are_400(archive) -> None:
    for path in ("/studies/abc", "/studies/1.2.3/series/1..2", "/studies/1.02.x/metadata"):
        response = requests.get(archive.url + path)
        assert response.status_code == 400, path
        assert "not a valid UID" in response.json()["error"]


def test_frame_numbers(archive, testdata) -> None:
    base = url(archive, testdata, JPEG)
    count = len(frames(testdata / JPEG))
    for bad in ("0", "1,a", "-1", "1,,2", "1.5"):
        response = requests.get(f"{base}/frames/{bad}")
        assert response.status_code == 400, bad
        assert "frame list" in response.json()["error"]
    response = requests.get(f"{base}/frames/1,{count + 1}")
    assert response.status_code == 404
    assert f"no frame {count + 1}" in response.json()["error"]


def test_frames_in_requested_order_with_content_location(archive, testdata) -> None:
    base = url(archive, testdata, JPEG)
    expected = frames(testdata / JPEG)
    response = requests.get(
        f"{base}/frames/3,1",
        headers={"Accept": 'multipart/related; type="image/jpeg"; transfer-syntax=*'},
    )
    assert response.status_code == 200
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    assert [body for _, body in parts] == [expected[2], expected[0]]
    assert [h["content-location"] for h, _ in parts] == [f"{base}/frames/3", f"{base}/frames/1"]
    assert parts[0][0]["content-type"].startswith("image/jpeg")


def test_single_frame_single_part(archive, testdata) -> None:
    base = url(archive, testdata, JPEG)
    response = requests.get(f"{base}/frames/2", headers={"Accept": "image/jpeg"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("image/jpeg")
    assert response.content == frames(testdata / JPEG)[1]


def test_native_frames_as_octet_stream(archive, testdata) -> None:
    base = url(archive, testdata, NATIVE)
    response = requests.get(
        f"{base}/frames/1,12",
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
    )
    assert response.status_code == 200
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    expected = frames(testdata / NATIVE)
    assert [body for _, body in parts] == [expected[0], expected[11]]


def test_unsatisfiable_accept_is_406(archive, testdata) -> None:
    jpeg = url(archive, testdata, JPEG)
    cases = [
        # Conversions no codec here performs: to video, to JPEG 2000 Part 2, to HTJ2K with
        # the RPCL progression order.
        (f"{jpeg}/frames/1", 'multipart/related; type="video/mpeg"'),
        (f"{jpeg}/frames/1", 'multipart/related; type="image/jpx"'),
        (
            f"{jpeg}/frames/1",
            'multipart/related; type="image/jphc"; transfer-syntax=1.2.840.10008.1.2.4.202',
        ),
        (
            jpeg,
            'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.100',
        ),
        (jpeg, "text/html"),
        (jpeg + "/metadata", "image/png"),
    ]
    for target, accept in cases:
        response = requests.get(target, headers={"Accept": accept})
        assert response.status_code == 406, (target, accept)
        assert "available" in response.json()["error"]


def test_default_accept_serves_stored_lossy_form(archive, testdata) -> None:
    # PS3.18 §8.7.3: the default transfer syntax applies "unless the origin server has only
    # access to the pixel data in lossy compressed form".
    jpeg = url(archive, testdata, JPEG)
    response = requests.get(jpeg, headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert response.status_code == 200
    body = parse_multipart(response.headers["Content-Type"], response.content)[0][1]
    assert body == (testdata / JPEG).read_bytes()
    # Several media ranges with weights: the best satisfiable one wins, even when it means
    # decompressing.
    response = requests.get(
        f"{jpeg}/frames/1",
        headers={
            "Accept": 'multipart/related; type="video/mpeg"; q=1, '
            'multipart/related; type="application/octet-stream"; q=0.9, '
            'multipart/related; type="image/jpeg"; q=0.5'
        },
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(
        'multipart/related; type="application/octet-stream"'
    )


def test_accept_query_parameter_wins_over_header(archive, testdata) -> None:
    jpeg = url(archive, testdata, JPEG)
    response = requests.get(
        f"{jpeg}/frames/1",
        params={"accept": "image/jpeg"},
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
    )
    assert response.status_code == 200
    assert response.content == frames(testdata / JPEG)[0]


def test_metadata_as_multipart_xml(archive, testdata) -> None:
    study = read(testdata / JPEG).StudyInstanceUID
    response = requests.get(
        f"{archive.url}/studies/{study}/metadata",
        headers={"Accept": 'multipart/related; type="application/dicom+xml"'},
    )
    assert response.status_code == 200
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    assert len(parts) == 1
    root = ET.fromstring(parts[0][1])
    uid = root.find("d:DicomAttribute[@keyword='SOPInstanceUID']/d:Value", NS)
    assert uid is not None and uid.text == read(testdata / JPEG).SOPInstanceUID
    bulk = root.find("d:DicomAttribute[@tag='7FE00010']/d:BulkData", NS)
    assert bulk is not None and bulk.get("uri", "").startswith(archive.url)


def test_bulkdata_paths(archive, testdata) -> None:
    base = url(archive, testdata, JPEG)
    assert requests.get(f"{base}/bulkdata/zz").status_code == 400
    assert requests.get(f"{base}/bulkdata/00091010").status_code == 404
    # Pixel data as bulk data: every frame, in order.
    response = requests.get(f"{base}/bulkdata/7FE00010")
    assert response.status_code == 200
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    assert [body for _, body in parts] == frames(testdata / JPEG)


def test_urls_follow_a_trusted_host_header(fresh_server, testdata) -> None:
    server = fresh_server(base_url="", allowed_hosts="pacs.example.org:8443")
    body, content_type = multipart_body([(testdata / JPEG).read_bytes()])
    response = requests.post(
        server.url + "/studies",
        data=body,
        headers={"Content-Type": content_type, "Host": "pacs.example.org:8443"},
    )
    assert response.status_code == 200
    retrieve = response.json()["00081199"]["Value"][0]["00081190"]["Value"][0]
    assert retrieve.startswith("http://pacs.example.org:8443/dicomweb/studies/")
    # A Host nobody listed, host name or not, never reaches a URL (or the JSON around it).
    for hostile in ('evil"},{"x', "evil.example"):
        response = requests.get(server.url + "/instances", headers={"Host": hostile})
        assert response.status_code == 200
        assert "evil" not in response.text
        assert f"http://127.0.0.1:{server.port}/dicomweb/" in response.text
    assert response.json()[0]["00081190"]["Value"][0].startswith("http://127.0.0.1")


def test_a_body_cut_short_after_it_started_is_detected_by_the_client(fresh_server) -> None:
    """A blob damaged after it was stored (truncated on disk) fails a read in the middle of a
    streamed response: the status is sent already, so the client must see the cut. Over a
    real connection: requests reports the body shorter than its Content-Length, and a
    transcoded multipart body (length unknown) lacks its close-delimiter."""
    import email.errors
    import email.parser
    import email.policy
    import os

    from tests.inprocess import multiframe, part10

    server = fresh_server()
    # 100 frames of 128 x 128 bytes: more than the first MiB made before the response starts.
    dataset = multiframe(100, 128, 128, seed=5)
    server.store([part10(dataset)])
    (blob,) = (server.data_dir / "blobs").rglob(f"*{dataset.SOPInstanceUID}*.dcm")
    os.truncate(blob, blob.stat().st_size - 20 * 128 * 128)  # the last 20 frames are gone
    target = (
        f"{server.url}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}/frames/" + ",".join(map(str, range(1, 101)))
    )
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        requests.get(
            target, headers={"Accept": 'multipart/related; type="application/octet-stream"'}
        )
    transcoded = requests.get(target, headers={"Accept": 'multipart/related; type="image/jp2"'})
    assert transcoded.status_code == 200
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {transcoded.headers['Content-Type']}\r\n\r\n".encode() + transcoded.content
    )
    assert any(isinstance(d, email.errors.CloseBoundaryNotFoundDefect) for d in message.defects)
    assert "cut short after" in server.log_path.read_text()
