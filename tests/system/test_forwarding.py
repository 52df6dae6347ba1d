"""Forwarding on real servers: a wsiarchive forwards by rule to Orthanc over DICOMweb
(STOW-RS) and over DIMSE (C-STORE), and to a second wsiarchive; the destination stopped for
a while loses nothing and gets nothing twice; `wsiarchive send` queues a study by hand."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pynetdicom import AE

from tests.servers import ArchiveServer, free_port

ORTHANC_DICOMWEB = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
HAVE_ORTHANC = shutil.which("Orthanc") is not None and Path(ORTHANC_DICOMWEB).exists()
FAST = {"forward_poll_seconds": "0.2", "forward_max_backoff_seconds": "1"}


class Orthanc:
    """Debian's Orthanc with its DICOMweb plugin on loopback; stop() and start() again keep
    its storage (an archive that is down for a while)."""

    def __init__(self, directory: Path) -> None:
        self.http_port, self.dicom_port = free_port(), free_port()
        self.directory = directory
        config = {
            "Name": "forwarded-to",
            "StorageDirectory": str(directory / "storage"),
            "IndexDirectory": str(directory / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": "ORTHANC",
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [ORTHANC_DICOMWEB],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "orthanc.json").write_text(json.dumps(config))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> Orthanc:
        log = open(self.directory / "orthanc.log", "ab")  # noqa: SIM115 (the child writes it)
        self.process = subprocess.Popen(
            ["Orthanc", str(self.directory / "orthanc.json")], stdout=log, stderr=log
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/system", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError("Orthanc did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(20)
            self.process = None

    def instances(self) -> dict[str, str]:
        """SOP Instance UID -> Orthanc's id of every instance it holds."""
        found = {}
        for orthanc_id in requests.get(self.url + "/instances", timeout=10).json():
            tags = requests.get(f"{self.url}/instances/{orthanc_id}/simplified-tags").json()
            found[tags["SOPInstanceUID"]] = orthanc_id
        return found

    def file(self, orthanc_id: str) -> pydicom.Dataset:
        content = requests.get(f"{self.url}/instances/{orthanc_id}/file", timeout=30).content
        return pydicom.dcmread(io.BytesIO(content))

    def new_instance_changes(self) -> int:
        changes = requests.get(self.url + "/changes?limit=10000", timeout=10).json()
        return sum(1 for change in changes["Changes"] if change["ChangeType"] == "NewInstance")


@pytest.fixture
def orthanc(tmp_path: Path):
    if not HAVE_ORTHANC:
        pytest.fail("Debian's orthanc and orthanc-dicomweb are not installed")
    peer = Orthanc(tmp_path / "orthanc").start()
    yield peer
    peer.stop()


def _cli(server: ArchiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    """A `wsiarchive` command on *server*'s archive with *server*'s settings."""
    env = dict(os.environ)
    env.update({f"WSIARCHIVE_{k.upper()}": str(v) for k, v in server.settings.items()})
    env["WSIARCHIVE_DATA_DIR"] = str(server.data_dir)
    return subprocess.run(
        [sys.executable, "-m", "wsiarchive", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _status(server: ArchiveServer) -> dict[str, dict[str, Any]]:
    rows = json.loads(_cli(server, "forward", "--status", "--json").stdout)
    return {row["destination"]: row for row in rows}


def _until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _copy(path: Path, **changes: str) -> bytes:
    """The file at *path* as a new instance (new SOP Instance UID) with *changes*."""
    dataset = pydicom.dcmread(path)
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _uid(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)


def test_forwarding_to_orthanc_by_stow_and_c_store_through_an_outage(
    fresh_server, orthanc: Orthanc, testdata: Path
) -> None:
    destinations = [
        {"name": "orthanc-web", "kind": "dicomweb", "url": orthanc.url + "/dicom-web"},
        {
            "name": "orthanc-dimse",
            "kind": "dimse",
            "ae_title": "ORTHANC",
            "host": "127.0.0.1",
            "port": orthanc.dicom_port,
        },
    ]
    rules = [
        {"to": "orthanc-web", "modality": "SM", "study_description": "web*"},
        {"to": ["orthanc-dimse"], "modality": ["CT", "SM"], "institution": "jfk*"},
        {"to": "orthanc-dimse", "source_ae": "scanner*"},  # what a scanner C-STOREs
    ]
    archive = fresh_server(
        forward_destinations=json.dumps(destinations),
        forward_rules=json.dumps(rules),
        dimse_peers=json.dumps([{"ae_title": "SCANNER1", "host": "127.0.0.1"}]),
        **FAST,
    )
    slide = _copy(testdata / "dicom/wsi2dcm_jpeg.dcm", StudyDescription="Web first")
    ct = (testdata / "radiology/pydicom_CT_small.dcm").read_bytes()
    mr = (testdata / "radiology/pydicom_MR_small.dcm").read_bytes()
    archive.store([slide, ct, mr])
    first = {_uid(slide), _uid(ct)}  # the MR matches no rule
    _until(lambda: set(orthanc.instances()) == first, "the first two instances in Orthanc")

    orthanc.stop()  # down for a while: what is stored meanwhile waits in the outbox
    slide2 = _copy(testdata / "dicom/wsi2dcm_jpeg2000.dcm", StudyDescription="web second")
    # A slide for the C-STORE destination: JPEG baseline, proposed in its own syntax.
    slide3 = _copy(
        testdata / "dicom/ezwsi_multiframe_camelyon_challenge_image.dcm",
        InstitutionName="JFK pathology",
    )
    ct2 = _copy(testdata / "radiology/pydicom_CT_small.dcm")
    other_ct = _copy(testdata / "radiology/pydicom_CT_small.dcm", InstitutionName="ELSEWHERE")
    archive.store([slide2, slide3, ct2, other_ct])
    failing = _until(
        lambda: (
            (s := _status(archive))
            and all(s[n]["pending"] and s[n]["last_reason"] for n in s)
            and len(s) == 2
            and s
        ),
        "failed attempts while Orthanc is down",
    )
    assert failing["orthanc-web"]["pending"] == 1 and failing["orthanc-dimse"]["pending"] == 2
    time.sleep(2)  # a few more retries with backoff
    orthanc.start()
    everything = first | {_uid(slide2), _uid(slide3), _uid(ct2)}
    held = _until(
        lambda: (found := orthanc.instances()) and set(found) == everything and found,
        "every instance in Orthanc after it came back",
    )
    status = _until(
        lambda: (
            (s := _status(archive))
            and s["orthanc-web"]["sent"] == 2
            and s["orthanc-dimse"]["sent"] == 3
            and s
        ),
        "every send recorded",
    )
    for name in status:
        assert status[name]["pending"] == 0 and status[name]["failed"] == 0
    # Only the head of each queue was retried while Orthanc was down (order is kept):
    # attempts are one per instance plus the head's failures.
    assert status["orthanc-web"]["attempts"] > 2 and status["orthanc-dimse"]["attempts"] > 3
    assert orthanc.new_instance_changes() == len(everything)
    # What Orthanc holds is what was stored: the JPEG 2000 slide's frames byte for byte.
    source = pydicom.dcmread(io.BytesIO(slide2))
    copy = orthanc.file(held[_uid(slide2)])
    assert copy.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
    assert copy.PixelData == source.PixelData
    wsi = pydicom.dcmread(io.BytesIO(slide3))
    wsi_copy = orthanc.file(held[_uid(slide3)])  # by C-STORE
    assert wsi_copy.file_meta.TransferSyntaxUID == wsi.file_meta.TransferSyntaxUID
    assert wsi_copy.PixelData == wsi.PixelData
    ct_copy = orthanc.file(held[_uid(ct2)])
    assert ct_copy.PixelData == pydicom.dcmread(io.BytesIO(ct2)).PixelData

    # A restart sends nothing again: the outbox says what was sent.
    archive.stop()
    archive.start()
    time.sleep(3)  # many poll periods
    assert _status(archive) == status
    assert orthanc.new_instance_changes() == len(everything)

    # C-STOREd by a scanner: forwarded by the source_ae rule (an MR matches no other rule).
    scanned = _copy(testdata / "radiology/pydicom_MR_small.dcm")
    archive.wait_dimse()
    ae = AE(ae_title="SCANNER1")
    ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", archive.dimse_port, ae_title="WSIARCHIVE")
    assert assoc.is_established
    assert assoc.send_c_store(pydicom.dcmread(io.BytesIO(scanned))).Status == 0
    assoc.release()
    _until(lambda: _uid(scanned) in orthanc.instances(), "the scanner's MR in Orthanc")

    # By hand: the MR study to the DIMSE destination, now.
    mr_study = str(pydicom.dcmread(io.BytesIO(mr), stop_before_pixels=True).StudyInstanceUID)
    out = _cli(archive, "send", mr_study, "--to", "orthanc-dimse", "--now").stdout
    assert "2 of 2 instances queued" in out  # send queues again what was sent before
    assert _uid(mr) in orthanc.instances()
    assert _status(archive)["orthanc-dimse"]["sent"] == 5


def test_forwarding_to_a_second_wsiarchive_with_a_token(
    fresh_server, testdata: Path, tmp_path: Path
) -> None:
    second = fresh_server(dimse="false", anonymous_access="off")
    created = _cli(second, "token", "create", "forwarder", "--scopes", "read,write").stdout
    token = created.split()[-1]
    auth = {"Authorization": f"Bearer {token}"}
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    destinations = [
        {"name": "second", "kind": "dicomweb", "url": second.url, "token_file": str(token_file)}
    ]
    archive = fresh_server(
        forward_destinations=json.dumps(destinations),
        forward_rules=json.dumps([{"to": "second"}]),
        **FAST,
    )
    slide = (testdata / "dicom/wsi2dcm_jpeg.dcm").read_bytes()
    archive.store([slide])
    study = str(pydicom.dcmread(io.BytesIO(slide), stop_before_pixels=True).StudyInstanceUID)

    def held() -> set[str]:
        answer = requests.get(f"{second.url}/studies/{study}/instances", headers=auth, timeout=10)
        if answer.status_code != 200:
            return set()
        return {item["00080018"]["Value"][0] for item in answer.json()}

    _until(lambda: held() == {_uid(slide)}, "the slide in the second archive")
    second.stop()
    more = [_copy(testdata / "dicom/wsi2dcm_jpeg.dcm") for _ in range(3)]
    archive.store(more)
    _until(lambda: _status(archive)["second"]["last_reason"], "a failed attempt")
    second.start()
    expected = {_uid(slide), *map(_uid, more)}
    _until(lambda: held() == expected, "every instance in the second archive")
    sent = _until(lambda: (s := _status(archive)["second"])["sent"] == 4 and s, "4 sent")
    assert sent["pending"] == 0 and sent["failed"] == 0

    # Sent again by hand: the second archive already holds them (duplicate_policy reject,
    # Failure Reason 0111), which counts as stored: no failure, nothing stored twice.
    out = _cli(archive, "send", study, "--to", "second", "--now").stdout
    assert "4 of 4 instances queued" in out
    again = _status(archive)["second"]
    assert again["sent"] == 4 and again["failed"] == 0 and again["pending"] == 0
    # The same through the admin API: refused without the admin scope, queued with it.
    api = f"http://127.0.0.1:{archive.port}/api/forward"
    assert requests.post(f"{api}/second/studies/{study}", timeout=10).status_code in (401, 403)
    created = _cli(archive, "token", "create", "operator", "--scopes", "read,admin").stdout
    admin = {"Authorization": f"Bearer {created.split()[-1]}"}
    queued = requests.post(f"{api}/second/studies/{study}", headers=admin, timeout=10)
    assert queued.status_code == 202 and queued.json() == {"queued": 4, "instances": 4}
    assert requests.post(f"{api}/elsewhere/studies/{study}", headers=admin).status_code == 404

    def settled() -> dict[str, Any] | None:
        rows = requests.get(api, headers=admin, timeout=10).json()
        row = next(r for r in rows if r["destination"] == "second")
        return row if row["pending"] == 0 else None

    row = _until(settled, "the resend through the API")
    assert row["sent"] == 4 and row["failed"] == 0
    assert held() == expected

    source = pydicom.dcmread(io.BytesIO(slide))
    answer = requests.get(
        f"{second.url}/studies/{study}/series/{source.SeriesInstanceUID}/instances/{_uid(slide)}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'} | auth,
        timeout=30,
    )
    assert answer.status_code == 200
    body = answer.content
    start = body.index(b"DICM") - 128
    copy = pydicom.dcmread(io.BytesIO(body[start:]))
    assert copy.PixelData == source.PixelData


def test_retrieve_a_study_from_another_wsiarchive(fresh_server, testdata: Path) -> None:
    remote = fresh_server(dimse="false")
    slides = [
        (testdata / "dicom/wsi2dcm_jpeg2000.dcm").read_bytes(),
        _copy(testdata / "dicom/wsi2dcm_jpeg2000.dcm"),
    ]
    remote.store(slides)
    source = pydicom.dcmread(io.BytesIO(slides[0]))
    here = fresh_server(
        dimse="false",
        forward_destinations=json.dumps(
            [{"name": "remote", "kind": "dicomweb", "url": remote.url}]
        ),
    )
    out = _cli(here, "retrieve", str(source.StudyInstanceUID), "--from", "remote").stdout
    assert "2 stored, 0 held already, 0 failed" in out
    answer = requests.get(
        f"{here.url}/studies/{source.StudyInstanceUID}/series/{source.SeriesInstanceUID}"
        f"/instances/{source.SOPInstanceUID}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        timeout=30,
    )
    assert answer.status_code == 200
    copy = pydicom.dcmread(io.BytesIO(answer.content[answer.content.index(b"DICM") - 128 :]))
    assert copy.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
    assert copy.PixelData == source.PixelData
    again = _cli(here, "retrieve", str(source.StudyInstanceUID), "--from", "remote").stdout
    assert "0 stored, 2 held already, 0 failed" in again


def test_forwarding_with_client_credentials_of_a_real_provider(
    fresh_server, testdata: Path, tmp_path: Path
) -> None:
    """A destination that takes the JWTs of an OpenID provider: the forwarder obtains its
    tokens by the client credentials grant (RFC 6749 4.4) and sends; a wrong secret is a
    failure whose reason names the token request, and nothing reaches the destination."""
    from tests.oidc import archive_with_login

    with archive_with_login(tmp_path / "oidc", groups=("LEEDS",)) as (second, provider):
        secret = tmp_path / "secret"
        secret.write_text(provider.client_secret + "\n")
        client = {
            "token_url": provider.discovery()["token_endpoint"],
            "client_id": provider.client_id,
            "client_secret_file": str(secret),
            "scope": "read write",
            # 61 s to live, within a second of the forwarder's 60 s leeway: each send asks
            # for a new token, so the wrong secret below is used at once.
            "token_params": {"resource": provider.resource, "expires_in": "61"},
        }
        destinations = [{"name": "second", "kind": "dicomweb", "url": second.url, **client}]
        archive = fresh_server(forward_destinations=json.dumps(destinations), **FAST)
        slide = _copy(testdata / "dicom/wsi2dcm_jpeg.dcm", InstitutionName="LEEDS")
        archive.store([slide])
        study = str(pydicom.dcmread(io.BytesIO(slide), stop_before_pixels=True).StudyInstanceUID)
        reader = {"Authorization": f"Bearer {provider.token(['read'])}"}

        def held() -> set[str]:
            url = f"{second.url}/studies/{study}/instances"
            answer = requests.get(url, headers=reader, timeout=10)
            return {i["00080018"]["Value"][0] for i in answer.json()} if answer.ok else set()

        assert held() == set()
        out = _cli(archive, "send", study, "--to", "second", "--now").stdout
        assert "0 failed" in out, out
        assert held() == {_uid(slide)}

        secret.write_text("not-the-secret\n")
        other = _copy(
            testdata / "dicom/wsi2dcm_jpeg.dcm",
            InstitutionName="LEEDS",
            StudyInstanceUID=generate_uid(),
            SeriesInstanceUID=generate_uid(),
        )
        archive.store([other])
        other_study = str(pydicom.dcmread(io.BytesIO(other)).StudyInstanceUID)
        time.sleep(1.5)
        _cli(archive, "send", other_study, "--to", "second")  # queued; the server sends

        def refused() -> dict[str, Any] | None:
            row = _status(archive)["second"]
            return row if "invalid_client" in (row["last_reason"] or "") else None

        status = _until(refused, "the token request refused")
        assert status["pending"] == 1 and status["sent"] == 1, status
        assert "token request" in status["last_reason"], status
        assert _uid(other) not in held() and held() == {_uid(slide)}


def test_a_correction_is_forwarded_and_the_status_needs_admin(fresh_server, testdata: Path) -> None:
    """A slide forwarded to a second wsiarchive (which overwrites duplicates), then corrected
    here (POST /studies/$bulkUpdate): the corrected object is forwarded too, and the second
    archive's copy has the new Patient ID. GET /api/forward needs the admin scope."""
    second = fresh_server(dimse="false", duplicate_policy="overwrite")
    destinations = [{"name": "second", "kind": "dicomweb", "url": second.url}]
    archive = fresh_server(
        forward_destinations=json.dumps(destinations),
        forward_rules=json.dumps([{"to": "second", "modality": "SM"}]),
        anonymous_scopes="read write",
        **FAST,
    )
    slide = (testdata / "dicom/wsi2dcm_jpeg.dcm").read_bytes()
    archive.store([slide])
    study = str(pydicom.dcmread(io.BytesIO(slide), stop_before_pixels=True).StudyInstanceUID)

    def held_patient_id() -> str | None:
        """The Patient ID of the second archive's copy (its metadata: an overwrite keeps
        the study row's first values, so QIDO's study level would not show it)."""
        answer = requests.get(f"{second.url}/studies/{study}/metadata", timeout=10)
        if answer.status_code != 200:
            return None
        return str((answer.json()[0].get("00100020", {}).get("Value") or [""])[0])

    _until(lambda: _status(archive).get("second", {}).get("sent") == 1, "the slide sent")
    assert held_patient_id() == ""
    body = {
        "studyInstanceUids": [study],
        "changeDataset": {"00100020": {"vr": "LO", "Value": ["LIS-9"]}},
    }
    answer = requests.post(f"{archive.url}/studies/$bulkUpdate", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    _until(lambda: held_patient_id() == "LIS-9", "the corrected slide in the second archive")
    status = _status(archive)["second"]
    assert (status["sent"], status["pending"], status["failed"]) == (1, 0, 0)

    api = f"http://127.0.0.1:{archive.port}/api/forward"
    assert requests.get(api, timeout=10).status_code == 403  # anonymous: read write only
    reader = _cli(archive, "token", "create", "viewer", "--scopes", "read").stdout.split()[-1]
    refused = requests.get(api, headers={"Authorization": f"Bearer {reader}"}, timeout=10)
    assert refused.status_code == 403
    admin = _cli(archive, "token", "create", "operator", "--scopes", "read,admin").stdout
    rows = requests.get(api, headers={"Authorization": f"Bearer {admin.split()[-1]}"}, timeout=10)
    assert rows.status_code == 200
    assert [(r["destination"], r["sent"]) for r in rows.json()] == [("second", 1)]
