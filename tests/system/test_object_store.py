"""An archive whose blobs live in object storage (S3 on moto's server, Azure Blob on Azurite):
STOW-RS in, WADO-RS out byte for byte, the bucket's objects read back by an independent
client, metadata served while the bucket is down, and verify's repairs after a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests
from dicomweb_client import DICOMwebClient

from tests.dicomfiles import frames, multipart_body, parse_multipart, read
from tests.servers import ObjectServer

FILES = [
    "dicom/wsi2dcm_jpeg.dcm",  # JPEG tiles
    "dicom/pathml_small_dicom.dcm",
    "dicom/wsi2dcm_raw.dcm",  # native pixels: frames are plain byte ranges
    "dicom/ezwsi_label_test.dcm",
]


def _uids(path: Path) -> tuple[str, str, str]:
    dataset = read(path)
    return dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID


def _instance_url(server, path: Path) -> str:
    study, series, instance = _uids(path)
    return f"{server.url}/studies/{study}/series/{series}/instances/{instance}"


def _cli(data_dir: Path, bucket, *args: str, **settings: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for name, value in {**bucket.settings, **settings}.items():
        env[f"WSIARCHIVE_{name.upper()}"] = value
    command = [sys.executable, *args[:-1], "--data-dir", str(data_dir), args[-1]]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def _verify(data_dir: Path, bucket, repair: bool = False) -> dict:
    args = ["-m", "wsiarchive", "verify", "--json"] + (["--repair"] if repair else [])
    env = {"verify_orphan_seconds": "0", "verify_claim_seconds": "0"}
    done = _cli(data_dir, bucket, *args[:-1], args[-1], **env)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def test_stow_and_wado_through_object_storage(fresh_server, object_bucket, testdata) -> None:
    server = fresh_server(**object_bucket.settings)
    paths = [testdata / name for name in FILES]
    server.store([path.read_bytes() for path in paths])
    keys = object_bucket.keys()
    assert len(keys) == len(paths)  # one object per instance, nothing else in the bucket
    assert not list((server.data_dir / "blobs").rglob("*.dcm"))  # and nothing on local disk
    client = DICOMwebClient(server.url)
    for path in paths:
        study, series, instance = _uids(path)
        # The object in the bucket, read by boto3 / azure-storage-blob, is the file stored.
        assert object_bucket.read(_key(keys, instance)) == path.read_bytes()
        # Whole-instance retrieval streams the object back unchanged.
        response = requests.get(
            _instance_url(server, path),
            headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        )
        assert response.status_code == 200, response.text
        [(_, body)] = parse_multipart(response.headers["Content-Type"], response.content)
        assert body == path.read_bytes()
        # Frames by ranged GETs, all at once and one at a time, as pydicom reads them.
        expected = frames(path)
        if expected:
            numbers = list(range(1, len(expected) + 1))
            got = client.retrieve_instance_frames(study, series, instance, numbers)
            assert [bytes(f) for f in got] == expected
            last = client.retrieve_instance_frames(study, series, instance, [len(expected)])
            assert [bytes(f) for f in last] == expected[-1:]
    assert _verify(server.data_dir, object_bucket)["remaining"] == 0


def _key(keys: list[str], instance: str) -> str:
    [found] = [key for key in keys if key.split("/")[2].startswith(instance + ".")]
    return found


def test_overwriting_replaces_the_object(fresh_server, s3_bucket, testdata) -> None:
    server = fresh_server(duplicate_policy="overwrite", **s3_bucket.settings)
    path = testdata / FILES[1]
    server.store([path.read_bytes()])
    first = s3_bucket.keys()
    server.store([path.read_bytes()])
    second = s3_bucket.keys()
    assert len(first) == len(second) == 1 and first != second  # a new key; the old one gone
    assert s3_bucket.read(second[0]) == path.read_bytes()
    response = requests.get(
        _instance_url(server, path), headers={"Accept": "application/dicom; transfer-syntax=*"}
    )
    assert response.content == path.read_bytes()


def test_metadata_and_searches_never_touch_the_bucket(fresh_server, testdata) -> None:
    moto = ObjectServer("s3").start()
    try:
        bucket = moto.bucket("short-lived")
        options = {**bucket.options, "retry_config": {"max_retries": 1, "retry_timeout": 2}}
        server = fresh_server(blob_url=bucket.url, blob_options=json.dumps(options))
        path = testdata / FILES[0]
        server.store([path.read_bytes()])
    finally:
        moto.stop()  # the bucket is gone from here on
    study, series, instance = _uids(path)
    metadata = requests.get(_instance_url(server, path) + "/metadata")
    assert metadata.status_code == 200
    assert metadata.json()[0]["00080018"]["Value"] == [instance]
    assert requests.get(f"{server.url}/studies?StudyInstanceUID={study}").status_code == 200
    frame = requests.get(
        _instance_url(server, path) + "/frames/1",
        headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'},
    )
    assert frame.status_code == 503 and frame.headers["Retry-After"] == "10"


# `wsiarchive import` that dies like a kill -9 right after the object's upload completed,
# before the index commits: the object is in the bucket, its row only a pending claim.
DYING_IMPORT = """
import os, sys
from storage.blobs.objectstore import ObjectBlobStore
from wsiarchive.cli import main

place = ObjectBlobStore.place

def dying(self, staged, key):
    place(self, staged, key)
    os._exit(137)

ObjectBlobStore.place = dying
sys.exit(main(sys.argv[1:]))
"""


def test_a_crash_after_the_upload_leaves_a_claim_verify_repairs(
    tmp_path, object_bucket, testdata
) -> None:
    data = tmp_path / "archive"
    path = testdata / FILES[1]
    died = _cli(data, object_bucket, "-c", DYING_IMPORT, "import", str(path))
    assert died.returncode == 137, died.stderr
    [uploaded] = object_bucket.keys()
    assert object_bucket.read(uploaded) == path.read_bytes()
    found = _verify(data, object_bucket)
    assert [(f["problem"], f["key"]) for f in found["findings"]] == [("stale-claim", uploaded)]
    repaired = _verify(data, object_bucket, repair=True)
    assert repaired["remaining"] == 0
    assert object_bucket.keys() == []  # never acknowledged, so removed
    # An object no row names (written behind the archive's back) is found and quarantined.
    object_bucket.write("1.2.3/4.5.6/7.8.9.0123456789ab.dcm", b"stray")
    found = _verify(data, object_bucket)
    assert [f["problem"] for f in found["findings"]] == ["orphan-blob"]
    assert _verify(data, object_bucket, repair=True)["remaining"] == 0
    assert object_bucket.keys() == [".quarantine/1.2.3/4.5.6/7.8.9.0123456789ab.dcm"]
    assert _verify(data, object_bucket) == {
        "instances": 0,
        "blobs": 0,
        "findings": [],
        "remaining": 0,
    }


def test_a_server_killed_mid_upload_leaves_nothing(fresh_server, s3_bucket, testdata) -> None:
    import socket
    import time

    server = fresh_server(**s3_bucket.settings)
    big = (testdata / "dicom/ezwsi_multiframe_camelyon_challenge_image.dcm").read_bytes() * 100
    body, content_type = multipart_body([big])
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        (
            f"POST /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body[: len(body) // 2]
    )
    staging = server.data_dir / "blobs" / ".staging"
    deadline = time.monotonic() + 10
    while not any(staging.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(staging.iterdir()), "the upload should be half-way in the local staging area"
    server.kill()
    sock.close()
    server.start()
    assert list(staging.iterdir()) == []  # the start-up recovery purged it
    assert s3_bucket.keys() == []
    assert requests.get(server.url + "/instances").json() == []
    server.store([(testdata / FILES[1]).read_bytes()])
    assert len(s3_bucket.keys()) == 1


def test_dimse_stores_into_and_sends_from_the_bucket(fresh_server, s3_bucket, tmp_path) -> None:
    """C-STORE stages the received file and uploads it; C-GET sends a temporary download
    (here re-encoded, as getscu accepts implicit VR only); storescu's file is in the bucket."""
    from tests.system.test_dimse import PEERS, _secondary_capture, run

    server = fresh_server(dimse_peers=PEERS, **s3_bucket.settings).wait_dimse()
    source = tmp_path / "sc.dcm"
    dataset = _secondary_capture(source)
    port = str(server.dimse_port)
    stored = run("storescu", "-aec", "WSIARCHIVE", "127.0.0.1", port, str(source))
    assert stored.returncode == 0, stored.stderr
    [key] = s3_bucket.keys()
    assert read_bytes_dataset(s3_bucket.read(key)) == [(e.tag, e.value) for e in dataset]
    out = tmp_path / "got"
    out.mkdir()
    got = run(
        "getscu", "-aec", "WSIARCHIVE", "-S", "-od", str(out),
        "-k", "QueryRetrieveLevel=SERIES",
        "-k", f"StudyInstanceUID={dataset.StudyInstanceUID}",
        "-k", f"SeriesInstanceUID={dataset.SeriesInstanceUID}",
        "127.0.0.1", port,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    [received] = list(out.iterdir())
    assert read_bytes_dataset(received.read_bytes()) == [(e.tag, e.value) for e in dataset]
    assert not [p for p in (server.data_dir / "blobs" / ".staging").iterdir() if p.is_file()]


def read_bytes_dataset(data: bytes) -> list[tuple[object, object]]:
    import io

    import pydicom

    return [(e.tag, e.value) for e in pydicom.dcmread(io.BytesIO(data))]
