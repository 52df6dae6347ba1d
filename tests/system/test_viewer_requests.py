"""The exact requests external viewers send, answered as PS3.18 says. The patterns are read
from their sources: Slim (ImagingDataCommons/slim src/components/Worklist.tsx,
services/fetchImageMetadata.ts, components/SlideViewer.tsx) and the dicom-microscopy-viewer
it runs on (src/pyramid.js, viewer.js), and OHIF 3.13 (extensions/default/src/
DicomWebDataSource: qido.js's includefield lists, the Accept header of
omitQuotationForMultipartRequest; seen the same in tests/system/test_external_viewers.py)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import requests

from tests.dicomfiles import frames, parse_multipart, read
from tests.viewerhost import part10

SLIDE = "dicom/wsi2dcm_jpeg.dcm"
XRAY = "radiology/fodicom_CR-MONO1-10-chest.nopreamble"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
DICOM_JSON = "application/dicom+json"


@dataclass(frozen=True)
class Archive:
    url: str
    slide: pydicom.Dataset
    slide_path: Path
    xray: pydicom.Dataset


@pytest.fixture(scope="module")
def archive(fresh_server_module, testdata) -> Archive:
    server = fresh_server_module()
    slide = read(testdata / SLIDE)
    # The test slide names no patient: one to search for, as a worklist does.
    slide.PatientName, slide.PatientID = "Doe^Jane", "P-VIEWERS"
    slide.StudyDate = slide.get("StudyDate") or "20240102"
    out = io.BytesIO()
    slide.save_as(out)
    server.store([out.getvalue()])
    xray = part10(testdata / XRAY)
    server.store([xray])
    return Archive(server.url, slide, testdata / SLIDE, pydicom.dcmread(io.BytesIO(xray)))


def _get(archive: Archive, path: str, accept: str = DICOM_JSON, **params: str):
    return requests.get(
        archive.url + path, params=params or None, headers={"Accept": accept}, timeout=60
    )


def _uids(response: requests.Response, tag: str = "0020000D") -> list[str]:
    assert response.status_code == 200, response.text[:300]
    assert response.headers["Content-Type"].startswith(DICOM_JSON)
    return [item[tag]["Value"][0] for item in response.json()]


def _empty(response: requests.Response) -> None:
    """PS3.18 §8.3.4.1 (Table 8.3.4-1 at §10.6.3): no match is 200 with an empty array (or
    204); dicomweb-client takes either."""
    assert response.status_code in (200, 204), response.text[:300]
    if response.status_code == 200:
        assert response.json() == []


# -- Slim ------------------------------------------------------------------------------------------
def test_slim_worklist(archive) -> None:
    slide = archive.slide
    # Worklist.fetchStudies: every slide study, then a search with *value* wildcards and
    # fuzzymatching (PS3.18 §8.3.4.1 attribute matching, §8.3.4.3 fuzzymatching).
    assert _uids(_get(archive, "/studies", ModalitiesInStudy="SM")) == [slide.StudyInstanceUID]
    name = str(slide.PatientName)
    found = _get(
        archive,
        "/studies",
        ModalitiesInStudy="SM",
        PatientName=f"*{name[1:4]}*",
        fuzzymatching="true",
    )
    assert _uids(found) == [slide.StudyInstanceUID]
    # collectModalitiesFromSeries: the series of the study, no parameters (§10.6.1.2).
    series = _get(archive, f"/studies/{slide.StudyInstanceUID}/series").json()
    assert [s["00080060"]["Value"][0] for s in series] == ["SM"]


def test_slim_opens_a_slide(archive) -> None:
    slide = archive.slide
    study = slide.StudyInstanceUID
    # fetchImageMetadata: SM series of the study through /series, then their metadata.
    matched = _get(archive, "/series", Modality="SM", StudyInstanceUID=study)
    assert _uids(matched, "0020000E") == [slide.SeriesInstanceUID]
    metadata = _get(archive, f"/studies/{study}/series/{slide.SeriesInstanceUID}/metadata")
    assert metadata.status_code == 200
    (instance,) = metadata.json()
    for keyword in ("TotalPixelMatrixColumns", "TotalPixelMatrixRows", "ImageType", "Columns"):
        tag = f"{pydicom.datadict.tag_for_keyword(keyword):08X}"
        assert instance[tag]["Value"], keyword
    # SlideViewer: presentation states, SR annotations, bulk annotation series (none here).
    _empty(_get(archive, f"/studies/{study}/instances", Modality="PR"))
    _empty(_get(archive, f"/studies/{study}/instances", Modality="SR"))
    _empty(_get(archive, f"/studies/{study}/series", Modality="ANN"))


def test_dicom_microscopy_viewer_tiles_and_overview(archive) -> None:
    """pyramid.js asks for a tile as application/octet-stream with transfer-syntax=* (any
    syntax, the stored one): PS3.18 §8.7.3.5.2 — the frame as stored, its part's
    Content-Type naming the syntax; viewer.js renders the overview with iccprofile=yes."""
    slide = archive.slide
    base = (
        f"/studies/{slide.StudyInstanceUID}/series/{slide.SeriesInstanceUID}"
        f"/instances/{slide.SOPInstanceUID}"
    )
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    response = _get(archive, base + "/frames/1,2", accept)
    assert response.status_code == 200, response.text[:300]
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    assert [body for _, body in parts] == frames(archive.slide_path)[:2]
    for headers, _ in parts:
        assert (
            headers["content-type"] == f"application/octet-stream; transfer-syntax={JPEG_BASELINE}"
        )
    rendered = _get(archive, base + "/rendered", "image/jpeg", iccprofile="yes")
    assert rendered.status_code == 200
    assert rendered.headers["Content-Type"] == "image/jpeg"
    assert rendered.content[:2] == b"\xff\xd8"


# -- OHIF 3 ----------------------------------------------------------------------------------------
OHIF_STUDY_FIELDS = "00081030,00080060,00080090,00100030"  # qido.js mapParams
OHIF_SERIES_FIELDS = "00080021,00080031,0008103E,00200011"  # seen from 3.13.2
OHIF_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"


def test_ohif_study_list(archive) -> None:
    everything = _get(
        archive,
        "/studies",
        limit="101",
        offset="0",
        fuzzymatching="true",
        includefield=OHIF_STUDY_FIELDS,
    )
    studies = {s["0020000D"]["Value"][0]: s for s in everything.json()}
    assert set(studies) == {archive.slide.StudyInstanceUID, archive.xray.StudyInstanceUID}
    for study in studies.values():
        # §10.6.3.3.1: the study's required attributes and each includefield attribute.
        assert {"00080020", "00100010", "00100020", "00201208", "00080061"} <= set(study)
        assert {"00081030", "00080090", "00100030"} <= set(study)
    # The filters: wildcards around each value (supportsWildcard), the patient ID by its
    # tag, a StudyDate range from 1970-01-02 when only an end date is given.
    slide = archive.slide
    filtered = _get(
        archive,
        "/studies",
        PatientName=f"*{str(slide.PatientName)[1:4]}*",
        **{"00100020": f"*{str(slide.PatientID)[1:3]}*"},
        ModalitiesInStudy="SM",
        StudyDate=f"19700102-{slide.StudyDate}",
        limit="101",
        offset="0",
        fuzzymatching="true",
        includefield=OHIF_STUDY_FIELDS,
    )
    assert _uids(filtered) == [slide.StudyInstanceUID]
    # A list of study UIDs (the viewer's ?StudyInstanceUIDs=a,b): UID list matching.
    both = f"{slide.StudyInstanceUID}\\{archive.xray.StudyInstanceUID}"
    listed = _get(archive, "/studies", StudyInstanceUID=both, includefield=OHIF_STUDY_FIELDS)
    assert sorted(_uids(listed)) == sorted(studies)


def test_ohif_opens_a_study(archive) -> None:
    xray = archive.xray
    study = f"/studies/{xray.StudyInstanceUID}"
    series = _get(archive, study + "/series", includefield=OHIF_SERIES_FIELDS)
    assert _uids(series, "0020000E") == [xray.SeriesInstanceUID]
    for tag in OHIF_SERIES_FIELDS.split(","):
        # Returned when the instance has it (§10.6.3.3.2); the CR has no series date/time.
        if tag in ("0008103E", "00200011") and tag in series.json()[0]:
            assert "vr" in series.json()[0][tag]
    metadata = _get(archive, f"{study}/series/{xray.SeriesInstanceUID}/metadata")
    (instance,) = metadata.json()
    # The pixel data by reference (§8.7.4 BulkDataURI), the frame by the frames resource
    # with the unquoted Accept of omitQuotationForMultipartRequest (RFC 9110 §5.6.6 allows
    # a token: the same media type as the quoted form).
    assert "BulkDataURI" in instance["7FE00010"]
    frame = _get(
        archive,
        f"{study}/series/{xray.SeriesInstanceUID}/instances/{xray.SOPInstanceUID}/frames/1",
        OHIF_FRAMES,
    )
    assert frame.status_code == 200, frame.text[:300]
    ((headers, body),) = parse_multipart(frame.headers["Content-Type"], frame.content)
    assert body == xray.PixelData
    assert headers["content-type"].startswith("application/octet-stream")
    # The bulk data value itself, as OHIF's retrieveBulkData asks for it.
    bulk = requests.get(
        instance["7FE00010"]["BulkDataURI"],
        headers={"Accept": "multipart/related; type=application/octet-stream"},
        timeout=60,
    )
    assert bulk.status_code == 200, bulk.text[:300]
    ((_, value),) = parse_multipart(bulk.headers["Content-Type"], bulk.content)
    assert value == xray.PixelData


def test_ohif_reads_the_slide_series_metadata(archive) -> None:
    slide = archive.slide
    metadata = _get(
        archive, f"/studies/{slide.StudyInstanceUID}/series/{slide.SeriesInstanceUID}/metadata"
    )
    assert metadata.status_code == 200
    text = metadata.text
    json.loads(text)
    # Series metadata of a slide stays small: per-frame items are not listed inline when the
    # frames are TILED_FULL, and pixel data is a reference (§8.7.4).
    assert len(text) < 200_000
    assert "BulkDataURI" in metadata.json()[0]["7FE00010"]
