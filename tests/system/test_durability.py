"""A server killed mid-upload, and concurrent stores of one instance over HTTP, leave no half
instance and damage nothing stored."""

from __future__ import annotations

import socket
import threading

import requests

from tests.dicomfiles import multipart_body, read
from tests.servers import ArchiveServer

LABEL = "dicom/ezwsi_label_test.dcm"


CAMELYON = "dicom/ezwsi_multiframe_camelyon_challenge_image.dcm"


def test_server_killed_mid_upload(tmp_path, testdata) -> None:
    server = ArchiveServer(tmp_path / "data").start()
    try:
        body, content_type = multipart_body([(testdata / LABEL).read_bytes()])
        assert (
            requests.post(
                server.url + "/studies", data=body, headers={"Content-Type": content_type}
            ).status_code
            == 200
        )
        big = (testdata / CAMELYON).read_bytes() * 200  # 23 MB announced, half sent
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
        for _ in range(100):
            if any(staging.iterdir()):
                break
            threading.Event().wait(0.05)
        assert any(staging.iterdir()), "the upload should be half-way in staging"
        server.kill()
        sock.close()
    finally:
        server.stop()
    restarted = ArchiveServer(server.data_dir).start()
    try:
        assert list((restarted.data_dir / "blobs" / ".staging").iterdir()) == []
        instances = requests.get(restarted.url + "/instances").json()
        assert [i["00080018"]["Value"][0] for i in instances] == [
            read(testdata / LABEL).SOPInstanceUID
        ]
        dataset = read(testdata / LABEL)
        url = (
            f"{restarted.url}/studies/{dataset.StudyInstanceUID}/series/"
            f"{dataset.SeriesInstanceUID}/instances/{dataset.SOPInstanceUID}"
        )
        got = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert got.content == (testdata / LABEL).read_bytes()
    finally:
        restarted.stop()


def test_concurrent_stores_of_one_instance(fresh_server, testdata) -> None:
    # Every store at once (max_uploads: no admission limit for this test of concurrency).
    server = fresh_server(max_uploads="-1")
    body, content_type = multipart_body([(testdata / CAMELYON).read_bytes()])
    statuses: list[int] = []

    def store() -> None:
        response = requests.post(
            server.url + "/studies", data=body, headers={"Content-Type": content_type}
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=store) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * 7
    files = [p for p in (server.data_dir / "blobs").rglob("*.dcm")]
    assert len(files) == 1
    assert files[0].read_bytes() == (testdata / CAMELYON).read_bytes()
