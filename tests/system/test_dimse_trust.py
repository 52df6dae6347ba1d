"""The DICOM listener's trust with real peers (pynetdicom, dcmtk, raw sockets): per-AE
operations, hosts refused at once, bounded PDUs, TLS with client certificates, a full disk."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit
from pynetdicom import AE
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from tests.servers import ArchiveServer
from tests.system.test_dimse import _wait_port, run, running_storescp

RAW = "dicom/wsi2dcm_raw.dcm"  # 2.4 MB
JPEG = "dicom/wsi2dcm_jpeg.dcm"  # 150 kB
WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"
NOT_AUTHORIZED = 0x0124


def peers(*entries: dict) -> str:
    return json.dumps([{"host": "127.0.0.1", **entry} for entry in entries])


def rss_mb(server: ArchiveServer) -> float:
    return int(server.listener_status()["VmRSS"].split()[0]) / 1024


def scu(title: str) -> AE:
    ae = AE(ae_title=title)
    ae.add_requested_context(Verification)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    for syntax in (JPEGBaseline8Bit, ExplicitVRLittleEndian):  # those of RAW and JPEG
        ae.add_requested_context(WSI, [syntax])
    return ae


def find_status(assoc, study: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(final status, matches) of a STUDY-level C-FIND."""
    query = pydicom.Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study
    statuses = [
        s.Status for s, _ in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
    ]
    return statuses[-1], sum(1 for s in statuses if s == 0xFF00)


def test_each_peer_may_do_what_its_entry_says(fresh_server, testdata: Path, tmp_path) -> None:
    raw, jpeg = pydicom.dcmread(testdata / RAW), pydicom.dcmread(testdata / JPEG)
    folder = tmp_path / "dest"
    folder.mkdir()
    with running_storescp(folder, "DEST", "+xa") as port:
        server = fresh_server(
            dimse_destinations=f"DEST=127.0.0.1:{port}",
            dimse_peers=peers(
                {"ae_title": "STORER", "operations": ["echo", "store"]},
                {"ae_title": "READER", "operations": ["find", "move"]},
            ),
        )
        _wait_port(server.dimse_port)
        storer = scu("STORER").associate("127.0.0.1", server.dimse_port, ae_title="WSIARCHIVE")
        assert storer.is_established
        assert storer.send_c_store(testdata / JPEG).Status == 0x0000
        assert find_status(storer, jpeg.StudyInstanceUID) == (NOT_AUTHORIZED, 0)
        query = pydicom.Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = jpeg.StudyInstanceUID
        moved = [
            s.Status
            for s, _ in storer.send_c_move(
                query, "DEST", StudyRootQueryRetrieveInformationModelMove
            )
        ]
        assert moved == [NOT_AUTHORIZED]
        assert storer.is_established  # a refusal keeps the association
        assert storer.send_c_echo().Status == 0x0000
        storer.release()
        assert list(folder.iterdir()) == []  # no sub-association was ever opened

        reader = scu("READER").associate("127.0.0.1", server.dimse_port, ae_title="WSIARCHIVE")
        assert reader.is_established
        refused = reader.send_c_store(testdata / RAW)
        assert refused.Status == NOT_AUTHORIZED
        assert "may not use STORE" in refused.ErrorComment
        assert reader.send_c_echo().Status == NOT_AUTHORIZED
        assert find_status(reader, jpeg.StudyInstanceUID) == (0x0000, 1)
        assert find_status(reader, raw.StudyInstanceUID) == (0x0000, 0)  # never stored
        moved = [
            s.Status
            for s, _ in reader.send_c_move(
                query, "DEST", StudyRootQueryRetrieveInformationModelMove
            )
        ]
        assert moved[-1] == 0x0000
        reader.release()
        assert len(list(folder.glob(f"*{jpeg.SOPInstanceUID}*"))) == 1
    got = requests.get(f"{server.url}/studies", params={"StudyInstanceUID": raw.StudyInstanceUID})
    assert got.status_code == 200 and got.json() == []  # the refused instance is not stored
    assert not list((server.data_dir / "blobs" / ".staging").glob("*.dcm"))
    # The audit trail, read with `wsiarchive audit`: who, from where, what, the DIMSE status.
    listed = subprocess.run(
        [sys.executable, "-m", "wsiarchive", "audit", "--data-dir", str(server.data_dir), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    events = {(e["actor"], e["operation"], e["outcome"]) for e in json.loads(listed.stdout)}
    assert ("STORER", "store", 0x0000) in events
    assert ("STORER", "search", NOT_AUTHORIZED) in events
    assert ("STORER", "send", NOT_AUTHORIZED) in events
    assert ("READER", "store", NOT_AUTHORIZED) in events
    assert ("READER", "search", 0x0000) in events
    assert ("READER", "send", 0x0000) in events
    stored = next(e for e in json.loads(listed.stdout) if e["operation"] == "store")
    assert stored["source"].startswith("STORER@127.0.0.1:")
    assert stored["study"] == jpeg.StudyInstanceUID


def test_refused_host_is_refused_at_once(fresh_server) -> None:
    server = fresh_server(
        dimse_peers=peers({"ae_title": "ECHOSCU"}), dimse_allowed_hosts="10.9.9.9"
    )
    _wait_port(server.dimse_port)
    threads = int(server.listener_status()["Threads"])
    started = time.monotonic()
    echo = run("echoscu", "-to", "60", "-aec", "WSIARCHIVE", "127.0.0.1", str(server.dimse_port))
    assert echo.returncode != 0
    assert time.monotonic() - started < 5, "the refused peer was kept waiting"
    with socket.create_connection(("127.0.0.1", server.dimse_port), timeout=5) as sock:
        answer = sock.recv(10)  # nothing sent: the A-ABORT comes anyway, then the close
    assert answer in (b"", bytes([7, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
    # No association thread is left behind for either connection.
    assert int(server.listener_status()["Threads"]) <= threads


def test_a_huge_pdu_is_not_buffered(fresh_server) -> None:
    """An anonymous connection announcing a 4 GB A-ASSOCIATE-RQ and sending 256 MB: the
    listener reads none of it (A-ABORT and close), its memory stays flat."""
    server = fresh_server(dimse_peers=peers({"ae_title": "ECHOSCU"}))
    _wait_port(server.dimse_port)
    before = rss_mb(server)
    sent = 0
    chunk = bytes(1 << 20)
    with socket.create_connection(("127.0.0.1", server.dimse_port), timeout=5) as sock:
        sock.sendall(struct.pack(">BBL", 0x01, 0, 0xFFFFFFF0))
        try:
            while sent < 256 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the listener closed the connection
    time.sleep(0.5)
    grown = rss_mb(server) - before
    assert grown < 32, f"the listener grew by {grown:.0f} MB for one anonymous connection"
    assert sent < 256 << 20, "the listener kept reading an unbounded PDU"
    echo = run("echoscu", "-aec", "WSIARCHIVE", "127.0.0.1", str(server.dimse_port))
    assert echo.returncode == 0, echo.stderr


def test_a_pdu_over_our_maximum_length_aborts(fresh_server, testdata: Path) -> None:
    server = fresh_server(dimse_peers=peers({"ae_title": "BIGPDU"}), dimse_max_pdu_length="65536")
    _wait_port(server.dimse_port)
    assoc = scu("BIGPDU").associate("127.0.0.1", server.dimse_port, ae_title="WSIARCHIVE")
    assert assoc.is_established
    assert assoc.acceptor.maximum_length == 65536  # what the listener announced
    # A peer ignoring it: the 2.4 MB instance in one PDU (0: no limit).
    from pynetdicom.pdu_primitives import MaximumLengthNotification

    for item in assoc.acceptor.user_information:
        if isinstance(item, MaximumLengthNotification):
            item.maximum_length_received = 0
    assoc.send_c_store(testdata / RAW)
    deadline = time.monotonic() + 10
    while not assoc.is_aborted and time.monotonic() < deadline:
        time.sleep(0.1)
    assert assoc.is_aborted


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Test CA",
        "-keyout", "ca.key", "-out", "ca.crt",
    )  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=TLSPEER")):
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
            "-keyout", f"{name}.key", "-out", f"{name}.csr",
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", f"{name}.crt",
        )  # fmt: skip
    return {
        n: folder / n for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
    }


def _client_context(files: dict[str, Path], with_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files["ca.crt"]))
    if with_certificate:
        context.load_cert_chain(str(files["client.crt"]), str(files["client.key"]))
    return context


def test_tls_with_client_certificates(fresh_server, testdata: Path, tmp_path: Path) -> None:
    """PS3.15 B.1: the listener's certificate checked by the peers, theirs by the listener
    (tls_ca); pynetdicom and dcmtk as peers; a peer that never completes its handshake does
    not stop the others."""
    assert "+tls" in run("storescu", "--help").stdout, "dcmtk is built without TLS"
    files = _certificates(tmp_path)
    server = fresh_server(
        tls_certificate=str(files["server.crt"]),
        tls_key=str(files["server.key"]),
        tls_ca=str(files["ca.crt"]),
        dimse_peers=peers({"ae_title": "TLSPEER"}),
    )
    _wait_port(server.dimse_port)
    stalled = socket.create_connection(("127.0.0.1", server.dimse_port))  # no ClientHello
    try:
        ae = scu("TLSPEER")
        ae.connection_timeout = 5
        started = time.monotonic()
        assoc = ae.associate(
            "127.0.0.1",
            server.dimse_port,
            ae_title="WSIARCHIVE",
            tls_args=(_client_context(files, True), "127.0.0.1"),
        )
        assert assoc.is_established, "a stalled handshake blocked the listener"
        assert time.monotonic() - started < 5
        assert assoc.dul.socket.socket.version() in ("TLSv1.2", "TLSv1.3")
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()
    finally:
        stalled.close()
    # Without a client certificate: no association.
    ae = scu("TLSPEER")
    ae.connection_timeout = 5
    anonymous = ae.associate(
        "127.0.0.1",
        server.dimse_port,
        ae_title="WSIARCHIVE",
        tls_args=(_client_context(files, False), "127.0.0.1"),
    )
    assert not anonymous.is_established
    tls = ["+tls", str(files["client.key"]), str(files["client.crt"]), "+cf", str(files["ca.crt"])]
    address = ["127.0.0.1", str(server.dimse_port)]
    echo = run("echoscu", *tls, "-aet", "TLSPEER", "-aec", "WSIARCHIVE", *address)
    assert echo.returncode == 0, echo.stdout + echo.stderr
    store = run(
        "storescu",
        *tls,
        "-R",
        "-xy",
        "-aet",
        "TLSPEER",
        "-aec",
        "WSIARCHIVE",
        *address,
        str(testdata / JPEG),
    )
    assert store.returncode == 0, store.stdout + store.stderr
    dataset = pydicom.dcmread(testdata / JPEG)
    got = requests.get(
        f"{server.url}/studies", params={"StudyInstanceUID": dataset.StudyInstanceUID}
    )
    assert got.status_code == 200
    plain = run("echoscu", "-to", "5", "-aet", "TLSPEER", "-aec", "WSIARCHIVE", *address)
    assert plain.returncode != 0


def test_full_disk_answers_a700_and_keeps_the_association(tmp_path: Path, testdata: Path) -> None:
    """A C-STORE whose data set cannot be written (EFBIG past RLIMIT_FSIZE, as ENOSPC on a
    full disk): A700 Refused: Out of Resources, the association stays, the next store works."""
    server = ArchiveServer(
        tmp_path / "data", {"dimse_peers": peers({"ae_title": "SCANNER"})}, file_size_limit=2 << 20
    ).start()
    try:
        _wait_port(server.dimse_port)
        assoc = scu("SCANNER").associate("127.0.0.1", server.dimse_port, ae_title="WSIARCHIVE")
        assert assoc.is_established
        full = assoc.send_c_store(testdata / RAW)  # 2.4 MB: past the 2 MB limit
        assert "Status" in full, "the association was aborted"
        assert full.Status == 0xA700
        assert assoc.is_established
        assert assoc.send_c_store(testdata / JPEG).Status == 0x0000
        assoc.release()
        staging = server.data_dir / "blobs" / ".staging"
        assert not [p for p in staging.rglob("*") if p.is_file()]  # nothing left half-written
    finally:
        server.stop()


@pytest.mark.parametrize("required", [True, False])
def test_tls_context_is_tls12_or_later(tmp_path: Path, required: bool) -> None:
    from dimse.server import tls_context

    files = _certificates(tmp_path)
    context = tls_context(
        str(files["server.crt"]), str(files["server.key"]), str(files["ca.crt"]), required
    )
    assert context is not None and context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == (ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL)


def test_a_peer_sees_only_the_studies_of_its_groups(fresh_server, testdata: Path, tmp_path) -> None:
    """The per-study access rule over DIMSE: C-FIND matches and C-MOVE sends only studies of
    the calling AE's access groups; a forbidden study is as if it were not stored."""
    leeds, christie = pydicom.dcmread(testdata / JPEG), pydicom.dcmread(testdata / RAW)
    leeds.InstitutionName, christie.InstitutionName = "LEEDS", "CHRISTIE"
    files = []
    for dataset, name in ((leeds, "leeds.dcm"), (christie, "christie.dcm")):
        dataset.save_as(tmp_path / name)
        files.append(tmp_path / name)
    folder = tmp_path / "dest"
    folder.mkdir()
    with running_storescp(folder, "DEST", "+xa") as port:
        server = fresh_server(
            access_group_attribute="InstitutionName",
            dimse_destinations=f"DEST=127.0.0.1:{port}",
            dimse_peers=peers(
                {"ae_title": "STORER", "operations": ["store"]},
                {"ae_title": "LEEDSPACS", "operations": ["find", "move"], "groups": ["LEEDS"]},
            ),
        )
        _wait_port(server.dimse_port)
        storer = scu("STORER").associate("127.0.0.1", server.dimse_port, ae_title="WSIARCHIVE")
        assert [storer.send_c_store(path).Status for path in files] == [0x0000, 0x0000]
        storer.release()
        reader = scu("LEEDSPACS").associate("127.0.0.1", server.dimse_port, ae_title="WSIARCHIVE")
        assert reader.is_established
        query = pydicom.Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ""
        found = [
            identifier.StudyInstanceUID
            for status, identifier in reader.send_c_find(
                query, StudyRootQueryRetrieveInformationModelFind
            )
            if status.Status == 0xFF00
        ]
        assert found == [leeds.StudyInstanceUID]
        assert find_status(reader, christie.StudyInstanceUID) == (0x0000, 0)
        for study in (christie.StudyInstanceUID, leeds.StudyInstanceUID):
            move = pydicom.Dataset()
            move.QueryRetrieveLevel = "STUDY"
            move.StudyInstanceUID = study
            list(reader.send_c_move(move, "DEST", StudyRootQueryRetrieveInformationModelMove))
        reader.release()
    sent = sorted(path.name for path in folder.iterdir())
    assert len(sent) == 1 and leeds.SOPInstanceUID in sent[0]
