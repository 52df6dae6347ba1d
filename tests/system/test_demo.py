"""The demo study of a real `wsiarchive serve`: an empty archive gets a converted slide next to
a CR X-ray of one demo patient, once, and not when it is off or the test data is missing."""

from __future__ import annotations

import io
import threading
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ImplicitVRLittleEndian

from tests.dicomfiles import parse_multipart
from tests.servers import ArchiveServer

PATIENT = "DEMO-0001"
SLIDE = "svs/CMU-1-Small-Region.svs"
XRAY = "radiology/fodicom_CR-MONO1-10-chest.nopreamble"
INSTANCES = 8  # the X-ray, and the slide's 5 levels, label and overview (its thumbnail
# would sit on a level: converter._thumbnail_fits)
LOADING = "loading the demo study"
LOADED = "demo study loaded ("


def _log(server: ArchiveServer, since: int = 0) -> str:
    assert server.log_path is not None
    return server.log_path.read_bytes()[since:].decode(errors="replace")


def _studies(server: ArchiveServer) -> list[dict]:
    response = requests.get(
        server.url + "/studies",
        params=[("includefield", "ModalitiesInStudy"), ("includefield", "StudyDescription")],
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json() or []


def _instances(server: ArchiveServer) -> list[dict]:
    response = requests.get(server.url + "/instances", timeout=10)
    assert response.status_code == 200, response.text
    return response.json() or []


def _wait_for_demo(server: ArchiveServer, timeout: float = 180) -> None:
    """Until the demo's load (in the background) is logged as done; fails on its failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _log(server)
        if LOADED in text or "another server loaded it" in text:
            return
        assert "demo study not loaded" not in text, text[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"the demo study was not loaded: {_log(server)[-3000:]}")


def _value(dataset: dict, tag: str) -> object:
    return (dataset.get(tag, {}).get("Value") or [None])[0]


def _read(raw: bytes) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(raw), force=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, testdata: Path):
    root = tmp_path_factory.mktemp("demo")
    server = ArchiveServer(root / "data", {"demo_study": "on", "demo_data": str(testdata)})
    server.start()
    _wait_for_demo(server)
    yield server
    server.stop()


def test_the_demo_patient_has_one_study_with_a_slide_and_an_x_ray(demo: ArchiveServer) -> None:
    studies = _studies(demo)
    assert len(studies) == 1
    study = studies[0]
    assert _value(study, "00100020") == PATIENT
    assert _value(study, "00100010") == {"Alphabetic": "Demo^Patient"}
    assert str(_value(study, "00081030")).startswith("Demo:")
    assert sorted(study["00080061"]["Value"]) == ["CR", "SM"]
    assert len(_instances(demo)) == INSTANCES


def test_the_slide_is_converted_and_its_frames_are_the_source_tiles(
    demo: ArchiveServer, testdata: Path
) -> None:
    import openslide
    from opentile import OpenTile

    study = _value(_studies(demo)[0], "0020000D")
    found = requests.get(
        demo.url + f"/studies/{study}/instances",
        params={"Modality": "SM", "includefield": "00080008,00280010,00280011,00280008"},
        timeout=10,
    ).json()
    kinds = {str(item["00080008"]["Value"][2]) for item in found}
    assert {"VOLUME", "LABEL", "OVERVIEW"} <= kinds  # the label and macro of the SVS too
    volumes = [item for item in found if item["00080008"]["Value"][2] == "VOLUME"]
    base = max(volumes, key=lambda item: int(_value(item, "00280008") or 1))
    series, instance = _value(base, "0020000E"), _value(base, "00080018")
    count = int(_value(base, "00280008") or 1)
    response = requests.get(
        demo.url
        + f"/studies/{study}/series/{series}/instances/{instance}/frames/"
        + ",".join(str(n) for n in range(1, count + 1)),
        headers={"Accept": 'multipart/related; type="image/jpeg"'},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    served = [body for _, body in parts]
    # Converted from the SVS: every base-level frame is its tile, byte for byte (opentile).
    with OpenTile.open(testdata / SLIDE) as tiler:
        level = tiler.get_level(0)
        width, height = level.tiled_size.width, level.tiled_size.height
        tiles = [level.get_tile((x, y)) for y in range(height) for x in range(width)]
    assert len(served) == len(tiles) == count
    for frame, tile in zip(served, tiles, strict=True):
        assert frame == tile or frame == tile + b"\x00"  # an odd tile's pad byte (PS3.5 A.4)
    # Decodable, and the first one is what OpenSlide reads from the source there.
    rows, columns = int(_value(base, "00280010")), int(_value(base, "00280011"))
    first = np.asarray(Image.open(io.BytesIO(served[0])).convert("RGB"), dtype=int)
    assert first.shape == (rows, columns, 3)
    source = openslide.OpenSlide(str(testdata / SLIDE))
    try:
        expected = np.asarray(source.read_region((0, 0), 0, (columns, rows)).convert("RGB"))
    finally:
        source.close()
    assert np.abs(first - expected.astype(int)).max() <= 2
    assert first.std() > 5  # tissue, not a blank tile


def test_the_x_ray_is_the_test_data_cr_for_the_demo_patient(
    demo: ArchiveServer, testdata: Path
) -> None:
    slide_study = _value(_studies(demo)[0], "0020000D")
    found = requests.get(
        demo.url + "/instances", params={"Modality": "CR", "PatientID": PATIENT}, timeout=10
    ).json()
    assert len(found) == 1
    study, series, instance = (_value(found[0], t) for t in ("0020000D", "0020000E", "00080018"))
    assert study == slide_study  # one study: the slide next to the X-ray
    response = requests.get(
        demo.url + f"/studies/{study}/series/{series}/instances/{instance}",
        headers={"Accept": 'multipart/related; type="application/dicom"'},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    (_, raw), *_ = parse_multipart(response.headers["Content-Type"], response.content)
    stored = _read(raw)
    original = _read((testdata / XRAY).read_bytes())  # a bare data set, Implicit VR LE
    original.file_meta = FileMetaDataset()
    original.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert stored.PixelData == original.PixelData
    assert np.array_equal(stored.pixel_array, original.pixel_array)
    assert stored.Modality == "CR" and stored.PatientID == PATIENT
    # New UIDs: the rewritten object does not pass for the original.
    assert stored.SOPInstanceUID != original.SOPInstanceUID
    assert stored.SeriesInstanceUID != original.SeriesInstanceUID
    assert stored.StudyInstanceUID != original.StudyInstanceUID


def test_a_restart_loads_nothing_more(demo: ArchiveServer) -> None:
    before = sorted(_value(item, "00080018") for item in _instances(demo))
    demo.stop()
    since = demo.log_path.stat().st_size if demo.log_path else 0
    demo.start()
    time.sleep(3)  # what a second load would have had time to begin
    assert LOADING not in _log(demo, since)
    assert sorted(_value(item, "00080018") for item in _instances(demo)) == before


@pytest.mark.parametrize("index", ["sqlite", "postgresql"])
def test_two_servers_starting_at_once_load_it_once(
    tmp_path: Path, testdata: Path, index: str, request: pytest.FixtureRequest
) -> None:
    settings = {"demo_study": "on", "demo_data": str(testdata)}
    if index == "postgresql":  # a cluster's index (the blobs: one shared directory)
        cluster = request.getfixturevalue("postgres")
        settings["database_url"] = cluster.database(f"demo_race_{uuid.uuid4().hex[:12]}")
    servers = [
        ArchiveServer(tmp_path / "data", dict(settings), log_dir=tmp_path / name)
        for name in ("a", "b")
    ]
    for server in servers:
        assert server.log_dir is not None
        server.log_dir.mkdir()
    threads = [threading.Thread(target=server.start) for server in servers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        loading = [server for server in servers if LOADING in _log(server)]
        assert loading  # at least one of them found the archive empty
        for server in loading:
            _wait_for_demo(server)
        logs = [_log(server) for server in servers]
        assert sum(LOADED in text for text in logs) == 1, logs
        # Each other server that began to load gave up when it found the X-ray claimed.
        elsewhere = sum("another server loaded it" in text for text in logs)
        assert elsewhere == len(loading) - 1, logs
        assert len(_studies(servers[0])) == 1
        assert len(_instances(servers[1])) == INSTANCES
        # The one that gave up left no blob behind, placed or staged.
        blobs = [p for p in (tmp_path / "data" / "blobs").rglob("*") if p.is_file()]
        assert len([p for p in blobs if ".staging" not in p.parts]) == INSTANCES
        assert [p for p in blobs if ".staging" in p.parts] == []
    finally:
        for server in servers:
            server.stop()


def test_off_the_empty_archive_stays_empty(fresh_server, testdata: Path) -> None:
    server = fresh_server(demo_study="off", demo_data=str(testdata))
    time.sleep(3)
    assert _studies(server) == []
    assert "demo study" not in _log(server)


def test_missing_test_data_is_a_warning_and_the_archive_serves(fresh_server, tmp_path) -> None:
    server = fresh_server(demo_study="on", demo_data=str(tmp_path / "nowhere"))
    assert requests.get(server.url.removesuffix("/dicomweb") + "/readyz", timeout=10).ok
    text = _log(server)
    assert "WARNING wsiarchive.demo: demo study not loaded: test data missing" in text
    assert str(tmp_path / "nowhere" / SLIDE) in text
    assert _studies(server) == []


def test_a_demo_that_cannot_be_converted_is_a_warning_and_the_archive_serves(
    fresh_server, testdata: Path, tmp_path: Path
) -> None:
    # Test data whose slide is not a slide (histolab's broken .svs under the demo's name).
    broken = tmp_path / "testdata"
    (broken / SLIDE).parent.mkdir(parents=True)
    (broken / XRAY).parent.mkdir(parents=True)
    (broken / SLIDE).symlink_to(testdata / "svs/histolab_broken.svs")
    (broken / XRAY).symlink_to(testdata / XRAY)
    server = fresh_server(demo_study="on", demo_data=str(broken))
    deadline = time.monotonic() + 120
    while "demo study not loaded" not in _log(server) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "demo study not loaded: ConversionError" in _log(server)
    assert _studies(server) == []  # not the X-ray alone either: one transaction
    assert requests.get(server.url.removesuffix("/dicomweb") + "/readyz", timeout=10).ok
