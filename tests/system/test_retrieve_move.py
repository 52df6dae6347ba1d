"""`wsiarchive retrieve --move-to`: C-MOVE of a study (the CMU-1 slide's twelve instances and
a CR) from a real Orthanc, into the running archive's listener and into the command's own
storage SCP; the instances arrive with their SOP Instance UIDs and frames unchanged. Then
what fails: a destination the peer does not know (A801), a study it does not hold, a peer
that is down, a Study Instance UID that is not one."""

from __future__ import annotations

import io
import json
import subprocess
import warnings
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient

from tests.dicomfiles import frames
from tests.servers import ArchiveServer, free_port
from tests.system.test_forwarding import Orthanc, _cli, orthanc  # noqa: F401
from tests.system.test_retrieve_dimse import _part10

SLIDE = "dicom/jcupitt-cmu-1-small-region"
CR = "radiology/fodicom_CR-MONO1-10-chest.nopreamble"
OUR_AE = "WSIMOVER"  # the calling AE of the C-MOVE, and the listener's AE title
SCP_AE = "WSIRECEIVE"  # the AE title of the command's own storage SCP


def _study(testdata: Path) -> tuple[str, dict[str, bytes]]:
    """The slide's study with the CR put into it: SOP Instance UID -> Part-10 bytes."""
    files = {p.name: p.read_bytes() for p in sorted((testdata / SLIDE).glob("*.dcm"))}
    slide = pydicom.dcmread(io.BytesIO(files["level-0-frames-0-30.dcm"]), stop_before_pixels=True)
    cr = pydicom.dcmread(io.BytesIO(_part10(testdata / CR)))
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName"):
        if keyword in slide:
            setattr(cr, keyword, getattr(slide, keyword))
        else:
            cr.pop(pydicom.datadict.tag_for_keyword(keyword), None)  # none, as in the slide
    out = io.BytesIO()
    cr.save_as(out, enforce_file_format=True)
    instances = {
        str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID): data
        for data in [*files.values(), out.getvalue()]
    }
    return str(slide.StudyInstanceUID), instances


def _orthanc_holding(peer: Orthanc, instances: dict[str, bytes], modalities: dict) -> None:
    """Restart *peer* knowing *modalities* (Orthanc refuses a C-MOVE from, or to, an AE it
    does not know), then store *instances* in it."""
    peer.stop()
    path = peer.directory / "orthanc.json"
    config = json.loads(path.read_text())
    config["DicomModalities"] = modalities
    path.write_text(json.dumps(config))
    peer.start()
    for data in instances.values():
        answer = requests.post(peer.url + "/instances", data=data, timeout=30)
        assert answer.status_code == 200, answer.text


def _modality(title: str, port: int, **allowed: bool) -> dict:
    return {"AET": title, "Host": "127.0.0.1", "Port": port, **allowed}


def _destinations(peer: Orthanc) -> str:
    return json.dumps(
        [
            {
                "name": "orthanc",
                "kind": "dimse",
                "ae_title": "ORTHANC",
                "host": "127.0.0.1",
                "port": peer.dicom_port,
            },
            {"name": "down", "kind": "dimse", "ae_title": "X", "host": "127.0.0.1", "port": 1},
        ]
    )


def _assert_holds(
    here: ArchiveServer, study: str, instances: dict[str, bytes], testdata: Path
) -> None:
    """*here* holds exactly *instances* in *study*, each with the same pixel data, and the
    largest slide level's frames are the same bytes."""
    client = DICOMwebClient(here.url)
    found = client.search_for_instances(study)
    assert {item["00080018"]["Value"][0] for item in found} == set(instances)
    for uid, data in instances.items():
        source = pydicom.dcmread(io.BytesIO(data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copy = client.retrieve_instance(study, str(source.SeriesInstanceUID), uid)
        assert copy.SOPClassUID == source.SOPClassUID
        assert copy.PixelData == source.PixelData
    level0 = testdata / SLIDE / "level-0-frames-0-30.dcm"
    source = pydicom.dcmread(level0, stop_before_pixels=True)
    expected = frames(level0)
    got = client.retrieve_instance_frames(
        study, str(source.SeriesInstanceUID), str(source.SOPInstanceUID), [1, 17, 30]
    )
    assert [bytes(f) for f in got] == [expected[0], expected[16], expected[29]]


def test_c_move_from_orthanc_into_the_running_listener(
    fresh_server,
    orthanc: Orthanc,  # noqa: F811
    testdata: Path,
) -> None:
    study, instances = _study(testdata)
    here = fresh_server(
        ae_title=OUR_AE,
        dimse_peers=json.dumps([{"ae_title": "ORTHANC", "operations": ["store"]}]),
        forward_destinations=_destinations(orthanc),
    ).wait_dimse()
    # One modality: the AE that asks for the move is the one it goes to.
    _orthanc_holding(orthanc, instances, {"us": _modality(OUR_AE, here.dimse_port, AllowMove=True)})
    out = _cli(here, "retrieve", study, "--from", "orthanc", "--move-to", OUR_AE).stdout
    assert out.strip() == f"C-MOVE to {OUR_AE}: 13 completed, 0 failed, 0 warning", out
    _assert_holds(here, study, instances, testdata)
    # The listener stored them, each C-STORE audited with Orthanc as its actor.
    audit = json.loads(_cli(here, "audit", "--operation", "store", "--json").stdout)
    assert {r["instance"] for r in audit if r["actor"] == "ORTHANC"} == set(instances)
    # Again: the listener rejects the first as a duplicate (0111, duplicate_policy reject),
    # and Orthanc (1.10) ends the move there with C000.
    with pytest.raises(subprocess.CalledProcessError) as again:
        _cli(here, "retrieve", study, "--from", "orthanc", "--move-to", OUR_AE)
    assert again.value.returncode == 1
    assert "error: C-MOVE status C000 (Unable to Process)" in again.value.stdout


def test_c_move_from_orthanc_into_a_storage_scp_of_the_command(
    fresh_server,
    orthanc: Orthanc,  # noqa: F811
    testdata: Path,
) -> None:
    study, instances = _study(testdata)
    port = free_port()
    here = fresh_server(dimse="false", ae_title=OUR_AE, forward_destinations=_destinations(orthanc))
    modalities = {
        "us": _modality(OUR_AE, 1, AllowMove=True),
        "receiver": _modality(SCP_AE, port),
    }
    _orthanc_holding(orthanc, instances, modalities)
    move = ("--from", "orthanc", "--move-to", SCP_AE, "--receive-on", f"127.0.0.1:{port}")
    out = _cli(here, "retrieve", study, *move).stdout
    assert out.splitlines() == [
        f"C-MOVE to {SCP_AE}: 13 completed, 0 failed, 0 warning",
        "13 stored, 0 held already, 0 failed",
    ], out
    _assert_holds(here, study, instances, testdata)
    # The same audit as the listener's: a C-STORE from Orthanc for each.
    audit = json.loads(_cli(here, "audit", "--operation", "store", "--json").stdout)
    assert {r["instance"] for r in audit if r["actor"] == "ORTHANC"} == set(instances)
    assert all(r["outcome"] == 0 and r["study"] == study and r["series"] for r in audit)
    # Again: all held already, which is no failure; the port is free again after each.
    again = _cli(here, "retrieve", study, *move).stdout
    assert "13 completed" in again and "0 stored, 13 held already, 0 failed" in again, again

    # Orthanc (1.10) answers a study it does not hold, and a destination it does not know,
    # with C000 Unable to process: a failure, said so.
    for args in (("1.2.3.4.5", *move), (study, "--from", "orthanc", "--move-to", "NOBODY")):
        with pytest.raises(subprocess.CalledProcessError) as failed:
            _cli(here, "retrieve", *args)
        assert failed.value.returncode == 1
        assert "error: C-MOVE status C000 (Unable to Process)" in failed.value.stdout


def test_c_move_from_another_wsiarchive_and_what_fails(fresh_server, testdata: Path) -> None:
    port = free_port()
    remote = fresh_server(
        dimse_peers=json.dumps([{"ae_title": OUR_AE, "operations": ["move"]}]),
        dimse_destinations=f"{SCP_AE}=127.0.0.1:{port}",
    ).wait_dimse()
    slide = (testdata / "dicom/wsi2dcm_jpeg2000.dcm").read_bytes()
    study = str(pydicom.dcmread(io.BytesIO(slide), stop_before_pixels=True).StudyInstanceUID)
    remote.store([slide])
    peer = {"name": "remote", "kind": "dimse", "ae_title": "WSIARCHIVE", "host": "127.0.0.1"}
    here = fresh_server(
        dimse="false",
        ae_title=OUR_AE,
        forward_destinations=json.dumps(
            [
                peer | {"port": remote.dimse_port},
                peer | {"name": "down", "ae_title": "X", "port": 1},
                {"name": "web", "kind": "dicomweb", "url": remote.url},
            ]
        ),
    )
    move = ("--move-to", SCP_AE, "--receive-on", str(port))  # on `host`, 127.0.0.1
    out = _cli(here, "retrieve", study, "--from", "remote", *move).stdout
    assert "1 completed, 0 failed, 0 warning" in out and "1 stored" in out, out
    # A study the remote does not hold: zero sub-operations, nothing stored, no failure.
    none = _cli(here, "retrieve", "1.2.3.4.5", "--from", "remote", *move).stdout
    assert none.splitlines() == [
        f"C-MOVE to {SCP_AE}: 0 completed, 0 failed, 0 warning",
        "0 stored, 0 held already, 0 failed",
    ], none

    def fails(*args: str, code: int = 1) -> str:
        with pytest.raises(subprocess.CalledProcessError) as failed:
            _cli(here, "retrieve", *args)
        assert failed.value.returncode == code, failed.value.stdout + failed.value.stderr
        return failed.value.stdout + failed.value.stderr

    # A destination the remote does not know: A801, and a reason saying so.
    unknown = fails(study, "--from", "remote", "--move-to", "NOBODY")
    assert (
        "error: C-MOVE status A801 (Move destination unknown): the peer does not know the AE "
        "title NOBODY" in unknown
    ), unknown
    # The peer is down.
    down = fails(study, "--from", "down", *move)
    assert "error: no association with X@127.0.0.1:1" in down, down
    # Refused before any association: not a UID, --receive-on alone, a DICOMweb peer.
    invalid = fails("1.2.x' OR 1=1", "--from", "remote", *move, code=2)
    assert "is not a valid UID" in invalid, invalid
    alone = fails(study, "--from", "remote", "--receive-on", str(port), code=2)
    assert "--receive-on needs --move-to" in alone, alone
    web = fails(study, "--from", "web", *move, code=2)
    assert "web is a dicomweb destination: no C-MOVE" in web, web
