"""One STOW-RS verdict for the forwarder and `wsiarchive export --stow` (PS3.18 10.5.3): a 202
whose Failed SOP Sequence lists the instance is a failure, an instance already stored (0111)
is stored. The verdict on answers made here, then both senders against a loopback server that
answers 202 with the instance failed, and export against our own archive that answers 409
0111 for an instance it holds."""

from __future__ import annotations

import email.parser
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest
import requests

from tests.inprocess import multiframe, open_at, store
from wsiarchive.cli import main
from wsiarchive.forwarding.config import parse_destinations
from wsiarchive.forwarding.stow import stow, verdict

INSTANCE, OTHER = "1.2.3.4.1", "1.2.3.4.2"
CT = "radiology/pydicom_CT_small.dcm"


def _failed(*entries: tuple[str, int]) -> dict[str, object]:
    items = [
        {"00081155": {"vr": "UI", "Value": [uid]}, "00081197": {"vr": "US", "Value": [reason]}}
        for uid, reason in entries
    ]
    return {"00081198": {"vr": "SQ", "Value": items}}


def _response(status: int, document: object | None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = b"" if document is None else json.dumps(document).encode()
    return response


@pytest.mark.parametrize(
    ("status", "document", "stored"),
    [
        (200, {}, True),
        (202, {"00081199": {"vr": "SQ", "Value": [{}]}}, True),  # stored with warnings
        (202, _failed((INSTANCE, 0xC000)), False),  # the instance failed: not stored
        (202, _failed((OTHER, 0xC000)), True),  # another one failed, not this one
        (202, [_failed((INSTANCE, 0xA700))], False),  # the document as a one-item array
        (409, _failed((INSTANCE, 0x0111)), True),  # a duplicate: it is there already
        (202, _failed((INSTANCE, 0x0111)), True),
        (409, _failed((INSTANCE, 0x0111), (INSTANCE, 0xA901)), False),
        (409, _failed((INSTANCE, 0xA901)), False),
        (409, {"00081198": {"vr": "SQ", "Value": [{"00081197": {"Value": [273]}}]}}, True),
        (400, None, False),
        (503, None, False),
    ],
)
def test_the_verdict(status: int, document: object | None, stored: bool) -> None:
    reason = verdict(_response(status, document), INSTANCE)
    assert (reason is None) == stored, reason
    if reason is not None:
        assert str(status) in reason


class _Refusing(BaseHTTPRequestHandler):
    """Answers every STOW-RS with 202 and the instance it was sent in the Failed SOP
    Sequence (Failure Reason C000), as an archive that stored another part would."""

    received: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        message = email.parser.BytesParser().parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
        )
        (part,) = message.get_payload()
        dataset = pydicom.dcmread(io.BytesIO(part.get_payload(decode=True)), force=True)
        uid = str(dataset.SOPInstanceUID)
        self.received.append(uid)
        answer = json.dumps(_failed((uid, 0xC000))).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Refusing.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}/dicomweb"
    server.shutdown()
    server.server_close()


def test_the_forwarder_takes_a_202_listing_the_instance_as_a_failure(
    tmp_path: Path, refusing: str
) -> None:
    archive, _ = open_at(tmp_path)
    record = archive.instance(*_where(store(archive, multiframe(1))), who=_admin())
    destination = parse_destinations(
        json.dumps([{"name": "d", "kind": "dicomweb", "url": refusing}])
    )
    with pytest.raises(RuntimeError, match=r"202 \(failure reasons C000\)"):
        stow(requests.Session(), archive, destination["d"], record)
    assert _Refusing.received == [record.instance]


def test_export_takes_a_202_listing_the_instance_as_a_failure(
    tmp_path: Path, testdata: Path, refusing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["import", str(testdata / CT), "--data-dir", str(data)]) == 0
    study = str(pydicom.dcmread(testdata / CT).StudyInstanceUID)
    capsys.readouterr()
    assert main(["export", study, "--stow", refusing, "--data-dir", str(data)]) == 1
    out = capsys.readouterr()
    assert len(_Refusing.received) == 1
    assert f"error: {_Refusing.received[0]} not exported" in out.err and "C000" in out.err
    assert "0 instances" in out.out and "1 failed" in out.out


def test_export_to_an_archive_that_holds_the_instance_already_succeeds(
    tmp_path: Path, testdata: Path, fresh_server, capsys: pytest.CaptureFixture[str]
) -> None:
    """Our own archive (duplicate_policy reject) answers 409 with Failure Reason 0111 for an
    instance it holds: the second export of the same study to it succeeds all the same."""
    destination = fresh_server(duplicate_policy="reject")
    data, folder = tmp_path / "data", tmp_path / "out"
    assert main(["import", str(testdata / CT), "--data-dir", str(data)]) == 0
    study = str(pydicom.dcmread(testdata / CT).StudyInstanceUID)
    args = ["export", study, "--stow", destination.url, "--data-dir", str(data)]
    args += ["--retain-full-dates"]  # an option on the --stow path too
    assert main([*args, "--to", str(folder)]) == 0
    (exported,) = folder.rglob("*.dcm")
    # what the archive answers this instance now: a duplicate (the case at hand)
    with open(exported, "rb") as fp:
        answer = requests.post(
            f"{destination.url}/studies",
            data=b"--b\r\nContent-Type: application/dicom\r\n\r\n" + fp.read() + b"\r\n--b--\r\n",
            headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
            timeout=30,
        )
    assert answer.status_code == 409
    assert answer.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0x0111]
    capsys.readouterr()
    assert main(args) == 0  # sent again: 409 0111, and the instance is there
    out = capsys.readouterr()
    assert "1 instances" in out.out and "0 failed" in out.out, out
    found = requests.get(f"{destination.url}/studies", timeout=30).json()
    assert len(found) == 1 and found[0]["00201208"]["Value"] == [1]
    original = pydicom.dcmread(testdata / CT)
    assert found[0]["00080020"]["Value"] == [original.StudyDate]  # Full Dates: K
    assert found[0]["00100020"]["Value"] != [original.PatientID]


def _where(stored: object) -> tuple[str, str, str]:
    return (stored.study, stored.series, stored.instance)  # type: ignore[attr-defined]


def _admin():  # type: ignore[no-untyped-def]
    from tests.inprocess import TESTER

    return TESTER
