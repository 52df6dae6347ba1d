"""The same archive on PostgreSQL: store, search, retrieve, refuse duplicates, concurrently."""

from __future__ import annotations

import threading

import requests
from dicomweb_client import DICOMwebClient

from tests.dicomfiles import frames, multipart_body, read


def test_archive_on_postgresql(fresh_server, postgres, testdata) -> None:
    # Every store at once (max_uploads: no admission limit for this test of concurrency).
    server = fresh_server(database_url=postgres.url, max_uploads="-1")
    folder = sorted((testdata / "dicom" / "jcupitt-cmu-1-small-region").glob("*.dcm"))
    bodies = [multipart_body([p.read_bytes()]) for p in folder]
    statuses: list[int] = []

    def store(body: bytes, content_type: str) -> None:
        response = requests.post(
            server.url + "/studies", data=body, headers={"Content-Type": content_type}
        )
        statuses.append(response.status_code)

    # Twelve instances of one new study and series, stored concurrently: the study and series
    # rows are created once whichever request gets there first.
    threads = [threading.Thread(target=store, args=pair) for pair in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * len(folder)

    client = DICOMwebClient(server.url)
    study = read(folder[0]).StudyInstanceUID
    studies = client.search_for_studies(search_filters={"StudyInstanceUID": study})
    assert len(studies) == 1
    assert studies[0]["00201208"]["Value"] == [len(folder)]
    for path in folder:
        dataset = read(path)
        got = client.retrieve_instance_frames(
            study, dataset.SeriesInstanceUID, dataset.SOPInstanceUID, [1]
        )
        assert bytes(got[0]) == frames(path)[0]
    response = requests.post(
        server.url + "/studies", data=bodies[0][0], headers={"Content-Type": bodies[0][1]}
    )
    assert response.status_code == 409


def test_index_gone_mid_service_is_503_then_recovers(fresh_server, testdata) -> None:
    """The index's server stopping while the archive serves: every request answers 503 with
    Retry-After within seconds (never a hang, never a 500), and service resumes by itself
    when the index is back."""
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from tests.servers import PostgresCluster

    # A cluster of its own (the session's is shared); outside pytest's root, as in conftest.
    directory = Path(tempfile.mkdtemp(prefix="wsiarchive-pg-"))
    cluster = PostgresCluster(directory).start()
    try:
        server = fresh_server(database_url=cluster.url)
        path = testdata / "dicom" / "wsi2dcm_jpeg.dcm"
        body, content_type = multipart_body([path.read_bytes()])
        stored = requests.post(
            server.url + "/studies", data=body, headers={"Content-Type": content_type}, timeout=60
        )
        assert stored.status_code == 200
        dataset = read(path)
        metadata = f"{server.url}/studies/{dataset.StudyInstanceUID}/metadata"
        cluster.stop()
        for url in (server.url + "/studies", metadata):
            started = time.monotonic()
            response = requests.get(url, timeout=30)
            assert response.status_code == 503, (url, response.text)
            assert response.headers["Retry-After"] == "10"
            assert "study index cannot be reached" in response.json()["error"]
            assert time.monotonic() - started < 15
        refused = requests.post(
            server.url + "/studies", data=body, headers={"Content-Type": content_type}, timeout=60
        )
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "10"
        cluster.resume()
        deadline = time.monotonic() + 30
        while requests.get(metadata, timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "service did not resume"
            time.sleep(0.5)
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
