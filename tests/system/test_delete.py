"""DELETE on real servers (SQLite and PostgreSQL): every level, statuses, the blobs gone and
verify clean, a reader streaming while the delete happens, and two servers on one index
seeing each other's overwrites and deletes (the bound of docs/operations.md)."""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from pathlib import Path

import pytest
import requests

from tests.dicomfiles import frames, parse_multipart, read
from tests.inprocess import multiframe, part10

DICOM = "application/dicom"
DELETER = {"anonymous_scopes": "read write delete"}


@pytest.fixture(params=["sqlite", "postgresql"])
def index_url(request):  # type: ignore[no-untyped-def]
    """An empty index of the test's own: "" (SQLite under the data directory) or a new
    PostgreSQL database in the session's cluster."""
    if request.param == "sqlite":
        return ""
    return request.getfixturevalue("postgres").database(f"t{uuid.uuid4().hex[:12]}")


def _settings(index_url: str, **more: str) -> dict[str, str]:
    return {**DELETER, **({"database_url": index_url} if index_url else {}), **more}


def _verify(data_dir: Path, index_url: str) -> dict:  # type: ignore[type-arg]
    from wsiarchive.cli import main

    out = io.StringIO()
    arguments = ["verify", "--json", "--data-dir", str(data_dir)]
    if index_url:
        arguments += ["--database-url", index_url]
    with contextlib.redirect_stdout(out):
        main(arguments)
    report: dict = json.loads(out.getvalue())  # type: ignore[type-arg]
    return report


def test_delete_every_level(fresh_server, testdata, index_url) -> None:
    server = fresh_server(**_settings(index_url))
    folder = sorted((testdata / "dicom" / "jcupitt-cmu-1-small-region").glob("*.dcm"))
    server.store([path.read_bytes() for path in folder])
    first = read(folder[0])
    study, series = first.StudyInstanceUID, first.SeriesInstanceUID
    instance_url = f"{server.url}/studies/{study}/series/{series}/instances/{first.SOPInstanceUID}"
    frame = requests.get(instance_url + "/frames/1", headers={"Accept": "image/jpeg"}, timeout=30)
    assert frame.status_code == 200 and frame.content == frames(folder[0])[0]

    assert requests.delete(instance_url, timeout=30).status_code == 204
    assert requests.get(instance_url + "/frames/1", timeout=30).status_code == 404
    assert requests.get(instance_url + "/metadata", timeout=30).status_code == 404
    found = requests.get(f"{server.url}/studies/{study}/instances", timeout=30).json()
    assert len(found) == len(folder) - 1
    assert requests.delete(instance_url, timeout=30).status_code == 404  # again
    assert (
        requests.delete(f"{server.url}/studies/{study}/series/1.2.x", timeout=30).status_code == 400
    )

    assert (
        requests.delete(f"{server.url}/studies/{study}/series/{series}", timeout=30).status_code
        == 204
    )
    assert requests.get(f"{server.url}/studies/{study}/metadata", timeout=30).status_code == 404
    assert requests.get(f"{server.url}/studies?StudyInstanceUID={study}", timeout=30).json() == []
    assert requests.delete(f"{server.url}/studies/{study}", timeout=30).status_code == 404
    blobs = server.data_dir / "blobs"
    assert not [p for p in blobs.rglob("*.dcm") if ".staging" not in p.parts]
    report = _verify(server.data_dir, index_url)
    assert report["findings"] == [] and report["instances"] == 0

    # Stored again after the delete: a new create, served as before.
    server.store([folder[0].read_bytes()])
    again = requests.get(instance_url + "/frames/1", headers={"Accept": "image/jpeg"}, timeout=30)
    assert again.status_code == 200 and again.content == frame.content
    assert requests.delete(f"{server.url}/studies/{study}", timeout=30).status_code == 204


def test_delete_needs_the_delete_scope(fresh_server, testdata) -> None:
    server = fresh_server()  # anonymous loopback clients may read and write, not delete
    path = testdata / "dicom" / "wsi2dcm_jpeg.dcm"
    server.store([path.read_bytes()])
    study = read(path).StudyInstanceUID
    refused = requests.delete(f"{server.url}/studies/{study}", timeout=30)
    assert refused.status_code == 403 and "delete" in refused.json()["error"]
    assert requests.get(f"{server.url}/studies/{study}/metadata", timeout=30).status_code == 200


def test_readers_streaming_while_the_study_is_deleted(fresh_server) -> None:
    """A reader that has started either gets every byte (an open file outlives its unlink)
    or sees its body cut short of Content-Length; never a 500, never silent garbage."""
    server = fresh_server(**DELETER)
    datasets = [multiframe(120, rows=384, columns=384, seed=seed) for seed in (1, 2)]
    datasets[1].StudyInstanceUID = datasets[0].StudyInstanceUID
    datasets[1].SeriesInstanceUID = datasets[0].SeriesInstanceUID
    raw = [part10(dataset) for dataset in datasets]
    server.store(raw)
    study, series = datasets[0].StudyInstanceUID, datasets[0].SeriesInstanceUID
    single = requests.get(
        f"{server.url}/studies/{study}/series/{series}/instances/{datasets[0].SOPInstanceUID}",
        headers={"Accept": DICOM},
        stream=True,
        timeout=60,
    )
    whole = requests.get(
        f"{server.url}/studies/{study}",
        headers={"Accept": f'multipart/related; type="{DICOM}"'},
        stream=True,
        timeout=60,
    )
    assert single.status_code == whole.status_code == 200
    head_single = single.raw.read(1 << 20)
    head_whole = whole.raw.read(1 << 20)
    assert requests.delete(f"{server.url}/studies/{study}", timeout=60).status_code == 204
    # The single instance: its file was open already, so it is served whole and exact.
    body = head_single + single.raw.read()
    assert body == raw[0] and int(single.headers["Content-Length"]) == len(raw[0])
    # The study: the second instance's blob is gone before its part begins.
    expected = int(whole.headers["Content-Length"])
    try:
        rest = whole.raw.read()
    except Exception:  # urllib3 noticed the connection closed short of Content-Length
        rest = None
    if rest is not None:
        body = head_whole + rest
        if len(body) == expected:
            parts = parse_multipart(whole.headers["Content-Type"], body)
            assert [payload for _, payload in parts] == raw
        else:
            assert len(body) < expected  # cut short where the client can tell
    frame_url = (
        f"{server.url}/studies/{study}/series/{series}/instances/{datasets[0].SOPInstanceUID}"
        "/frames/1"
    )
    assert requests.get(frame_url, timeout=30).status_code == 404


def test_two_servers_on_one_index_see_each_others_changes(fresh_server, postgres, testdata) -> None:
    """Overwrite and delete through A, read through B at once: B's cached instance record is
    checked against its blob on every use (docs/operations.md, "Caches")."""
    url = postgres.database(f"t{uuid.uuid4().hex[:12]}")
    shared = fresh_server.root / "shared-blobs"
    settings = _settings(url, blob_dir=str(shared), duplicate_policy="overwrite")
    a, b = fresh_server(**settings), fresh_server(**settings)
    dataset = multiframe(3, seed=1)
    a.store([part10(dataset)])
    study, series, instance = (
        dataset.StudyInstanceUID,
        dataset.SeriesInstanceUID,
        dataset.SOPInstanceUID,
    )
    base = f"/studies/{study}/series/{series}/instances/{instance}"
    octets = {"Accept": "application/octet-stream"}
    first = requests.get(b.url + base + "/frames/2", headers=octets, timeout=30)
    assert first.status_code == 200 and first.content == frames_of(dataset)[1]
    changed = multiframe(3, seed=2)
    changed.SOPInstanceUID, changed.file_meta.MediaStorageSOPInstanceUID = instance, instance
    changed.StudyInstanceUID, changed.SeriesInstanceUID = study, series
    a.store([part10(changed)])
    second = requests.get(b.url + base + "/frames/2", headers=octets, timeout=30)
    assert second.status_code == 200 and second.content == frames_of(changed)[1]
    revalidated = requests.get(
        b.url + base + "/frames/2",
        headers={**octets, "If-None-Match": first.headers["ETag"]},
        timeout=30,
    )
    assert revalidated.status_code == 200 and revalidated.content == second.content
    assert requests.delete(a.url + base, timeout=30).status_code == 204
    assert requests.get(b.url + base + "/frames/2", headers=octets, timeout=30).status_code == 404
    assert requests.get(b.url + base + "/metadata", timeout=30).status_code == 404


def frames_of(dataset) -> list[bytes]:  # type: ignore[no-untyped-def]
    size = dataset.Rows * dataset.Columns
    return [dataset.PixelData[i * size : (i + 1) * size] for i in range(dataset.NumberOfFrames)]
