"""The same archive on PostgreSQL: store, search, retrieve, refuse duplicates, concurrently."""

from __future__ import annotations

import threading

import requests
from dicomweb_client import DICOMwebClient

from tests.dicomfiles import frames, multipart_body, read


def test_archive_on_postgresql(fresh_server, postgres, testdata) -> None:
    server = fresh_server(database_url=postgres.url)
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
