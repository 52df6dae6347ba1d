"""Every real DICOM object in the test data, stored over STOW-RS and read back over WADO-RS."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient

from tests.conftest import data_id, dicom_files
from tests.dicomfiles import frames, multipart_body, parse_multipart, read

FILES = dicom_files()
WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"


def test_corpus_is_complete_and_intact(testdata: Path) -> None:
    # 44 objects at the time of writing; a shrinking or altered corpus would silently weaken
    # every test below.
    assert len(FILES) >= 44
    sums = {}
    for line in (testdata / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.partition("  ")
        sums[name.strip().lstrip("./")] = digest
    for path in FILES:
        name = str(path.relative_to(testdata))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sums[name], name


@pytest.fixture(scope="module")
def stored(server) -> dict[Path, dict]:
    """STOW every object as its original bytes, a few per request."""
    responses: dict[Path, dict] = {}
    for start in range(0, len(FILES), 7):
        batch = FILES[start : start + 7]
        body, content_type = multipart_body([p.read_bytes() for p in batch])
        response = requests.post(
            server.url + "/studies",
            data=body,
            headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
        )
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/dicom+json")
        referenced = response.json()["00081199"]["Value"]
        assert len(referenced) == len(batch)
        for path, item in zip(batch, referenced, strict=True):
            responses[path] = item
    return responses


def _uids(path: Path) -> tuple[str, str, str]:
    dataset = read(path)
    return dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID


@pytest.mark.parametrize("path", FILES, ids=data_id)
def test_stow_response_references_instance(server, stored, path: Path) -> None:
    item = stored[path]
    study, series, instance = _uids(path)
    dataset = read(path)
    assert item["00081150"]["Value"] == [dataset.SOPClassUID]
    assert item["00081155"]["Value"] == [instance]
    assert item["00081190"]["Value"] == [
        f"{server.url}/studies/{study}/series/{series}/instances/{instance}"
    ]


@pytest.mark.parametrize("path", FILES, ids=data_id)
def test_instance_bytes_are_the_original(server, stored, path: Path) -> None:
    study, series, instance = _uids(path)
    url = f"{server.url}/studies/{study}/series/{series}/instances/{instance}"
    response = requests.get(
        url, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    )
    assert response.status_code == 200, response.text
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    assert len(parts) == 1
    headers, body = parts[0]
    assert body == path.read_bytes()
    transfer_syntax = read(path).file_meta.TransferSyntaxUID
    assert headers["content-type"] == f"application/dicom; transfer-syntax={transfer_syntax}"
    assert headers["content-location"] == url
    # Single-part form (PS3.18 Table 10.4.4-1 note 3) gives the same bytes.
    single = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert single.status_code == 200
    assert single.content == path.read_bytes()


@pytest.mark.parametrize("path", FILES, ids=data_id)
def test_dicomweb_client_reads_instance_and_frames(server, stored, path: Path) -> None:
    client = DICOMwebClient(server.url)
    study, series, instance = _uids(path)
    original = read(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        retrieved = client.retrieve_instance(study, series, instance)
    assert retrieved == original
    expected = frames(path)
    numbers = list(range(1, len(expected) + 1))
    got = client.retrieve_instance_frames(study, series, instance, numbers)
    assert [bytes(f) for f in got] == expected
    # One frame at a time, in the stored media type named explicitly.
    transfer_syntax = original.file_meta.TransferSyntaxUID
    if transfer_syntax == "1.2.840.10008.1.2.4.50":
        one = client.retrieve_instance_frames(
            study, series, instance, [len(expected)], media_types=(("image/jpeg", transfer_syntax),)
        )
        assert [bytes(f) for f in one] == expected[-1:]


@pytest.mark.parametrize("path", FILES, ids=data_id)
def test_metadata_equals_original_and_bulkdata_resolves(server, stored, path: Path) -> None:
    client = DICOMwebClient(server.url)
    study, series, instance = _uids(path)
    metadata = client.retrieve_instance_metadata(study, series, instance)
    assert not any(key.startswith("0002") for key in metadata), "no File Meta in metadata"
    fetched: list[str] = []

    def bulk(uri: str) -> bytes:
        assert uri.startswith(server.url + "/"), uri
        fetched.append(uri)
        return bytes(client.retrieve_bulkdata(uri)[0])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rebuilt = pydicom.Dataset.from_json(metadata, bulk_data_uri_handler=bulk)
        original = read(path)
    assert_same(original, rebuilt)
    if "PixelData" in original:
        assert metadata["7FE00010"]["BulkDataURI"].endswith(
            f"/instances/{instance}/bulkdata/7FE00010"
        )


def assert_same(original: pydicom.Dataset, rebuilt: pydicom.Dataset, where: str = "") -> None:
    """Every element of *original* (but the pixel data) is in *rebuilt* with the same value;
    sequences are compared item by item, bulk data byte for byte."""
    for element in original:
        if element.tag == 0x7FE00010:
            continue
        name = f"{where}{element.keyword or element.tag}"
        assert element.tag in rebuilt, f"{name} missing from metadata"
        other = rebuilt[element.tag]
        if element.VR == "SQ":
            assert len(other.value) == len(element.value), name
            for number, (a, b) in enumerate(zip(element.value, other.value, strict=True)):
                assert_same(a, b, f"{name}[{number}].")
        elif element.VR in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
            assert bytes(other.value or b"") == bytes(element.value or b""), name
        else:
            assert other.value == element.value, name


def test_series_and_study_retrieval_return_every_instance(server, stored) -> None:
    client = DICOMwebClient(server.url)
    folder = [p for p in FILES if "3dhistech-wg26-BPAEC" in str(p)]
    study, series, _ = _uids(folder[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series_datasets = client.retrieve_series(study, series)
        study_datasets = client.retrieve_study(study)
    expected = {read(p).SOPInstanceUID for p in folder}
    assert {d.SOPInstanceUID for d in series_datasets} == expected
    assert {d.SOPInstanceUID for d in study_datasets} >= expected
    metadata = client.retrieve_series_metadata(study, series)
    assert {m["00080018"]["Value"][0] for m in metadata} == expected
    study_metadata = client.retrieve_study_metadata(study)
    assert len(study_metadata) == len(study_datasets)


def test_wsidicom_web_source_reads_the_same_regions(server, stored, testdata: Path) -> None:
    from wsidicom import WsiDicom, WsiDicomWebClient

    for folder in ("dicom/3dhistech-wg26-BPAEC", "dicom/jcupitt-cmu-1-small-region"):
        files = sorted((testdata / folder).glob("*"))
        files = [p for p in files if p in FILES]
        study = read(files[0]).StudyInstanceUID
        series = read(files[0]).SeriesInstanceUID
        web_client = WsiDicomWebClient(DICOMwebClient(server.url))
        with WsiDicom.open(files) as local, WsiDicom.open_web(web_client, study, series) as web:
            assert len(web.levels) == len(local.levels)
            for level in range(min(3, len(local.levels))):
                size = local.levels[level].size
                region = (min(600, size.width), min(500, size.height))
                expected = local.read_region((0, 0), level, region)
                actual = web.read_region((0, 0), level, region)
                assert list(actual.getdata()) == list(expected.getdata())
            if local.labels:
                assert list(web.read_label().getdata()) == list(local.read_label().getdata())
