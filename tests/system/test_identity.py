"""Identity over real HTTP: a server with anonymous access off, tokens and share links made
by the `wsiarchive` command, used by real DICOMweb clients (dicomweb-client, wsidicom), and
the audit trail read back with `wsiarchive audit`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from dicomweb_client import DICOMwebClient
from requests.exceptions import HTTPError

from tests.dicomfiles import frames, read

SLIDE = "dicom/wsi2dcm_jpeg.dcm"
XRAY = "radiology/pydicom_CT_small.dcm"


def wsiarchive(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "WSIARCHIVE_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "wsiarchive", *args],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )


def token(data_dir: Path, *args: str) -> str:
    made = wsiarchive(data_dir, *args)
    assert made.returncode == 0, made.stderr
    assert "shown only now" in made.stderr
    return made.stdout.strip()


@pytest.fixture(scope="module")
def archive(fresh_server_module, testdata):
    server = fresh_server_module(
        anonymous_access="off",
        access_group_attribute="InstitutionName",
        token_recheck_seconds="2",  # revocations seen within 2 s
    )
    writer = token(server.data_dir, "token", "create", "loader", "--scopes", "write")
    slide, xray = read(testdata / SLIDE), read(testdata / XRAY)
    slide.InstitutionName, xray.InstitutionName = "LEEDS", "CHRISTIE"
    from tests.inprocess import part10

    response = requests.post(
        f"{server.url}/studies",
        data=_multipart([part10(slide), part10(xray)]),
        headers={
            "Content-Type": 'multipart/related; type="application/dicom"; boundary=b0undary',
            "Authorization": f"Bearer {writer}",
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return server, slide, xray


def _multipart(parts: list[bytes]) -> bytes:
    body = b""
    for part in parts:
        body += b"--b0undary\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n"
    return body + b"--b0undary--\r\n"


def test_without_a_token_nothing_is_served(archive) -> None:
    server, slide, _ = archive
    for path in ("/studies", f"/studies/{slide.StudyInstanceUID}/metadata"):
        response = requests.get(server.url + path, timeout=10)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_real_clients_read_with_a_group_token(archive, testdata) -> None:
    server, slide, xray = archive
    text = token(
        server.data_dir, "token", "create", "viewer", "--scopes", "read", "--groups", "LEEDS"
    )
    client = DICOMwebClient(server.url, headers={"Authorization": f"Bearer {text}"})
    studies = client.search_for_studies()
    assert [s["0020000D"]["Value"][0] for s in studies] == [slide.StudyInstanceUID]
    frame = client.retrieve_instance_frames(
        slide.StudyInstanceUID, slide.SeriesInstanceUID, slide.SOPInstanceUID, [1]
    )
    assert frame[0] == frames(testdata / SLIDE)[0]
    with pytest.raises(HTTPError) as refused:
        client.retrieve_study_metadata(xray.StudyInstanceUID)
    assert refused.value.response.status_code == 404
    # wsidicom's web source reads the slide through the same token.
    from wsidicom import WsiDicom, WsiDicomWebClient

    with WsiDicom.open_web(
        WsiDicomWebClient(client), slide.StudyInstanceUID, slide.SeriesInstanceUID
    ) as wsi:
        assert wsi.read_tile(0, (0, 0)).size[0] > 0


def test_share_link_and_revocation(archive) -> None:
    server, slide, xray = archive
    text = token(server.data_dir, "share", "create", slide.StudyInstanceUID, "--name", "Dr O")
    headers = {"Authorization": f"Bearer {text}"}
    url = f"{server.url}/studies/{slide.StudyInstanceUID}/metadata"
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    other = f"{server.url}/studies/{xray.StudyInstanceUID}/metadata"
    assert requests.get(other, headers=headers, timeout=10).status_code == 404
    listed = json.loads(wsiarchive(server.data_dir, "share", "list", "--json").stdout)
    (share,) = [row for row in listed if row["study"] == slide.StudyInstanceUID]
    assert share["last_used_at"] != "-" and text not in json.dumps(listed)
    assert wsiarchive(server.data_dir, "share", "revoke", share["id"]).returncode == 0
    # Seen by every worker once token_recheck_seconds (2 s here) have passed.
    import time

    time.sleep(2.5)
    assert [requests.get(url, headers=headers, timeout=10).status_code for _ in range(6)] == [
        401
    ] * 6


def test_the_audit_trail_names_who_looked_at_what(archive) -> None:
    server, slide, _ = archive
    text = token(server.data_dir, "token", "create", "auditee", "--scopes", "read")
    headers = {"Authorization": f"Bearer {text}"}
    url = f"{server.url}/studies/{slide.StudyInstanceUID}/metadata"
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    listed = wsiarchive(
        server.data_dir, "audit", "--study", slide.StudyInstanceUID, "--operation", "retrieve",
        "--json",
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    events = json.loads(listed.stdout)
    token_id = text.split("_")[1]
    mine = [e for e in events if e["actor"] == f"token:{token_id}"]
    assert [(e["operation"], e["outcome"], e["success"], e["source"]) for e in mine] == [
        ("retrieve", 200, True, "127.0.0.1")
    ]
    stored = wsiarchive(server.data_dir, "audit", "--operation", "store", "--json")
    assert {e["instance"] for e in json.loads(stored.stdout)} >= {slide.SOPInstanceUID}
