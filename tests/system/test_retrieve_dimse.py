"""`wsiarchive retrieve --from` a DIMSE destination: C-GET of a study from a real Orthanc
holding a CR and a JPEG-compressed WSI slide; the instances arrive here in their own transfer
syntax with equal pixel data, and a second run finds them held already."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pydicom
import pytest
import requests

from dimse.retrieving import sop_classes
from tests.system.test_forwarding import Orthanc, _cli, _copy, orthanc  # noqa: F401

OUR_AE = "WSIGET"
ALL_SYNTAXES = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}


def _part10(path: Path) -> bytes:
    out = io.BytesIO()
    pydicom.dcmread(path, force=True).save_as(out, enforce_file_format=True)
    return out.getvalue()


def _allow_c_get(peer: Orthanc) -> None:
    """Restart *peer* knowing our AE as a modality that may C-GET (Orthanc refuses unknown
    calling AEs)."""
    peer.stop()
    path = peer.directory / "orthanc.json"
    config = json.loads(path.read_text())
    config["DicomModalities"] = {
        "wsiarchive": {"AET": OUR_AE, "Host": "127.0.0.1", "Port": 1, "AllowGet": True}
    }
    path.write_text(json.dumps(config))
    peer.start()


def test_retrieve_a_study_from_orthanc_by_c_get(
    fresh_server,
    orthanc: Orthanc,  # noqa: F811
    testdata: Path,
) -> None:
    _allow_c_get(orthanc)
    cr = _part10(testdata / "radiology/fodicom_CR-MONO1-10-chest.nopreamble")
    study = str(pydicom.dcmread(io.BytesIO(cr)).StudyInstanceUID)
    slide = _copy(testdata / "dicom/wsi2dcm_jpeg.dcm", StudyInstanceUID=study)
    for data in (cr, slide):
        answer = requests.post(orthanc.url + "/instances", data=data, timeout=30)
        assert answer.status_code == 200, answer.text
    here = fresh_server(
        dimse="false",
        ae_title=OUR_AE,
        forward_destinations=json.dumps(
            [
                {
                    "name": "orthanc-dimse",
                    "kind": "dimse",
                    "ae_title": "ORTHANC",
                    "host": "127.0.0.1",
                    "port": orthanc.dicom_port,
                }
            ]
        ),
    )
    # The SOP classes proposed come from Orthanc's C-FIND, not from the fallback list.
    classes = sop_classes(OUR_AE, ("ORTHANC", "127.0.0.1", orthanc.dicom_port), study)
    assert classes == sorted(str(pydicom.dcmread(io.BytesIO(d)).SOPClassUID) for d in (cr, slide))
    out = _cli(here, "retrieve", study, "--from", "orthanc-dimse").stdout
    assert "2 stored, 0 held already, 0 failed" in out, out
    for data in (cr, slide):
        source = pydicom.dcmread(io.BytesIO(data))
        answer = requests.get(
            f"{here.url}/studies/{study}/series/{source.SeriesInstanceUID}"
            f"/instances/{source.SOPInstanceUID}",
            headers=ALL_SYNTAXES,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        body = answer.content
        copy = pydicom.dcmread(io.BytesIO(body[body.index(b"DICM") - 128 :]))
        assert copy.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
        assert copy.SOPClassUID == source.SOPClassUID
        assert copy.PixelData == source.PixelData
        assert copy.pixel_array.tobytes() == source.pixel_array.tobytes()
    again = _cli(here, "retrieve", study, "--from", "orthanc-dimse").stdout
    assert "0 stored, 2 held already, 0 failed" in again, again


def test_retrieve_from_another_wsiarchive_by_c_get_and_an_unreachable_peer(
    fresh_server, testdata: Path
) -> None:
    remote = fresh_server(
        dimse_peers=json.dumps([{"ae_title": OUR_AE, "operations": ["find", "get"]}])
    )
    slide = (testdata / "dicom/wsi2dcm_jpeg2000.dcm").read_bytes()
    source = pydicom.dcmread(io.BytesIO(slide))
    study = str(source.StudyInstanceUID)
    remote.store([slide, _copy(testdata / "dicom/wsi2dcm_jpeg2000.dcm")])
    here = fresh_server(
        dimse="false",
        ae_title=OUR_AE,
        forward_destinations=json.dumps(
            [
                {
                    "name": "remote",
                    "kind": "dimse",
                    "ae_title": "WSIARCHIVE",
                    "host": "127.0.0.1",
                    "port": remote.dimse_port,
                },
                {
                    "name": "nobody",
                    "kind": "dimse",
                    "ae_title": "X",
                    "host": "127.0.0.1",
                    "port": 1,
                },
            ]
        ),
    )
    out = _cli(here, "retrieve", study, "--from", "remote").stdout
    assert "2 stored, 0 held already, 0 failed" in out, out
    answer = requests.get(
        f"{here.url}/studies/{study}/series/{source.SeriesInstanceUID}"
        f"/instances/{source.SOPInstanceUID}",
        headers=ALL_SYNTAXES,
        timeout=30,
    )
    body = answer.content
    copy = pydicom.dcmread(io.BytesIO(body[body.index(b"DICM") - 128 :]))
    assert copy.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
    assert copy.PixelData == source.PixelData
    unknown = _cli(here, "retrieve", "1.2.3.4.5", "--from", "remote").stdout
    assert "0 stored, 0 held already, 0 failed" in unknown, unknown
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _cli(here, "retrieve", study, "--from", "nobody")
    assert (
        failed.value.returncode == 1 and "no association with X@127.0.0.1:1" in failed.value.stdout
    )
