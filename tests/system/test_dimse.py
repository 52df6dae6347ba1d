"""The DICOM listener with real peers: dcmtk's echoscu, storescu, findscu, movescu, getscu and
storescp, pynetdicom as a storage commitment and TLS client, and Orthanc."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
import pytest
import requests
from pynetdicom import AE, build_role
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)

from tests import dicomfiles
from tests.conftest import dicom_files
from tests.dicomfiles import frames, multipart_body, read
from tests.servers import ArchiveServer, free_port

WSI_FILES = [p for p in dicom_files() if "3dhistech-wg26-BPAEC" in str(p)]
# The peers of these tests: dcmtk's tools under their default calling AE titles and the
# pynetdicom and Orthanc peers, each with every operation, from loopback only.
PEER_TITLES = ["ECHOSCU", "STORESCU", "FINDSCU", "MOVESCU", "GETSCU", "GETTER", "SCANNER"]
PEER_TITLES += ["TLSCLIENT", "MOVER", "ORTHANC"]
PEERS = json.dumps([{"ae_title": title, "host": "127.0.0.1"} for title in PEER_TITLES])
JPEG_WSI = "dicom/wsi2dcm_jpeg.dcm"


def dataset_bytes(path: Path) -> bytes:
    """The data set of a Part-10 file without its File Meta Information."""
    return dicomfiles.dataset_bytes(path.read_bytes())


def run(*command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)


@contextmanager
def running_storescp(folder: Path, ae_title: str, *options: str) -> Iterator[int]:
    """dcmtk's storescp writing into *folder*, for as long as the block runs; yields its port."""
    port = free_port()
    process = subprocess.Popen(
        ["storescp", *options, "-aet", ae_title, "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield port
    finally:
        process.terminate()
        process.wait()


@pytest.fixture(scope="module")
def storescp(tmp_path_factory: pytest.TempPathFactory):
    """dcmtk's storescp as a C-MOVE destination, accepting every transfer syntax."""
    folder = tmp_path_factory.mktemp("storescp")
    with running_storescp(folder, "DEST", "+xa") as port:
        yield folder, port


def _wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def archive(fresh_server_module, storescp):
    _, destination_port = storescp
    server = fresh_server_module(
        dimse_destinations=f"DEST=127.0.0.1:{destination_port}", dimse_peers=PEERS
    )
    _wait_port(server.dimse_port)
    return server


def test_echo(archive) -> None:
    result = run("echoscu", "-aec", "WSIARCHIVE", "127.0.0.1", str(archive.dimse_port))
    assert result.returncode == 0, result.stderr


def test_storescu_then_wado_byte_for_byte(archive, testdata: Path) -> None:
    result = run(
        "storescu",
        "-aec",
        "WSIARCHIVE",
        "-R",
        "-xy",
        "127.0.0.1",
        str(archive.dimse_port),
        *map(str, WSI_FILES),
    )
    assert result.returncode == 0, result.stderr
    for path in WSI_FILES:
        dataset = read(path)
        url = (
            f"{archive.url}/studies/{dataset.StudyInstanceUID}/series/"
            f"{dataset.SeriesInstanceUID}/instances/{dataset.SOPInstanceUID}"
        )
        got = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert got.status_code == 200
        stored = archive.data_dir.parent / "stored.dcm"
        stored.write_bytes(got.content)
        assert dataset_bytes(stored) == dataset_bytes(path)
        assert frames(stored) == frames(path)
    assert list((archive.data_dir / "blobs" / ".staging").iterdir()) == []
    # A second push of the same instance: Duplicate SOP Instance (0111) under "reject".
    again = run(
        "storescu",
        "-v",
        "-aec",
        "WSIARCHIVE",
        "-R",
        "-xy",
        "127.0.0.1",
        str(archive.dimse_port),
        str(WSI_FILES[0]),
    )
    assert "Received Store Response (Unknown Status: 0x111)" in again.stdout + again.stderr


def test_stow_then_dimse_retrieve(archive, storescp, testdata: Path, tmp_path: Path) -> None:
    folder, _ = storescp
    archive.store([(testdata / JPEG_WSI).read_bytes()])
    dataset = read(testdata / JPEG_WSI)
    result = run(
        "movescu",
        "-aec",
        "WSIARCHIVE",
        "-aem",
        "DEST",
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={dataset.StudyInstanceUID}",
        "127.0.0.1",
        str(archive.dimse_port),
    )
    assert result.returncode == 0, result.stderr
    received = list(folder.glob(f"*{dataset.SOPInstanceUID}*"))
    assert len(received) == 1
    assert dataset_bytes(received[0]) == dataset_bytes(testdata / JPEG_WSI)
    unknown = run(
        "movescu",
        "-aec",
        "WSIARCHIVE",
        "-aem",
        "NOWHERE",
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={dataset.StudyInstanceUID}",
        "127.0.0.1",
        str(archive.dimse_port),
    )
    assert "Refused: MoveDestinationUnknown" in unknown.stderr
    # C-GET over the requesting association (pynetdicom as the SCU: dcmtk's getscu offers
    # no presentation context for VL Whole Slide Microscopy Image).
    received_by_get: list[pydicom.Dataset] = []

    def on_store(event):  # type: ignore[no-untyped-def]
        received_by_get.append(event.dataset)
        return 0x0000

    from pynetdicom import evt

    ae = AE(ae_title="GETTER")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(dataset.SOPClassUID, [dataset.file_meta.TransferSyntaxUID])
    role = build_role(dataset.SOPClassUID, scp_role=True)
    assoc = ae.associate(
        "127.0.0.1",
        archive.dimse_port,
        ae_title="WSIARCHIVE",
        ext_neg=[role],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    query = pydicom.Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID = dataset.StudyInstanceUID
    query.SeriesInstanceUID = dataset.SeriesInstanceUID
    query.SOPInstanceUID = dataset.SOPInstanceUID
    statuses = [
        s.Status for s, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)
    ]
    assoc.release()
    assert statuses[-1] == 0x0000
    assert len(received_by_get) == 1
    assert received_by_get[0].PixelData == read(testdata / JPEG_WSI).PixelData


def _secondary_capture(path: Path) -> pydicom.Dataset:
    """A small Secondary Capture image, a class dcmtk's getscu proposes (it has no context for
    VL Whole Slide Microscopy Image)."""
    import numpy as np
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    dataset = pydicom.Dataset()
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = generate_uid()
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.PatientID = "GET-1"
    dataset.PatientName = "Get^Scu"
    dataset.Modality = "OT"
    dataset.ConversionType = "WSD"
    dataset.Rows, dataset.Columns = 64, 48
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    dataset.PixelData = np.arange(64 * 48, dtype=np.uint8).tobytes()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.save_as(path, enforce_file_format=True)
    return dataset


def test_getscu_retrieves_what_storescu_stored(archive, tmp_path: Path) -> None:
    source = tmp_path / "sc.dcm"
    dataset = _secondary_capture(source)
    stored = run(
        "storescu", "-aec", "WSIARCHIVE", "127.0.0.1", str(archive.dimse_port), str(source)
    )
    assert stored.returncode == 0, stored.stderr
    out = tmp_path / "got"
    out.mkdir()
    got = run(
        "getscu",
        "-aec",
        "WSIARCHIVE",
        "-S",
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=SERIES",
        "-k",
        f"StudyInstanceUID={dataset.StudyInstanceUID}",
        "-k",
        f"SeriesInstanceUID={dataset.SeriesInstanceUID}",
        "127.0.0.1",
        str(archive.dimse_port),
    )
    assert got.returncode == 0, got.stderr
    received = list(out.iterdir())
    assert len(received) == 1, got.stdout + got.stderr
    # getscu accepts only implicit VR little endian by default: the archive re-encodes the
    # explicit VR instance losslessly, every element and pixel equal.
    arrived = pydicom.dcmread(received[0])
    assert arrived.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert [(e.tag, e.value) for e in arrived] == [(e.tag, e.value) for e in dataset]
    # Nothing matches: zero sub-operations, success, no file.
    none = run(
        "getscu",
        "-aec",
        "WSIARCHIVE",
        "-S",
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "StudyInstanceUID=1.2.3.999",
        "127.0.0.1",
        str(archive.dimse_port),
    )
    assert none.returncode == 0, none.stderr
    assert len(list(out.iterdir())) == 1


def _find(archive, tmp_path: Path, model: str, *keys: str) -> list[pydicom.Dataset]:
    out = tmp_path / f"find{time.monotonic_ns()}"
    out.mkdir()
    result = run(
        "findscu",
        "-aec",
        "WSIARCHIVE",
        model,
        "-X",
        "-od",
        str(out),
        *[arg for key in keys for arg in ("-k", key)],
        "127.0.0.1",
        str(archive.dimse_port),
    )
    assert result.returncode == 0, result.stderr
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def test_findscu_at_every_level(archive, tmp_path: Path) -> None:
    bpaec = read(WSI_FILES[0])
    patients = _find(
        archive,
        tmp_path,
        "-P",
        "QueryRetrieveLevel=PATIENT",
        "PatientID",
        "PatientName",
        "NumberOfPatientRelatedStudies",
    )
    assert patients and all("PatientID" in p for p in patients)
    studies = _find(
        archive,
        tmp_path,
        "-S",
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={bpaec.StudyInstanceUID}",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances",
        "PatientName",
    )
    assert len(studies) == 1
    assert studies[0].NumberOfStudyRelatedInstances == len(WSI_FILES)
    assert "SM" in studies[0].ModalitiesInStudy
    series = _find(
        archive,
        tmp_path,
        "-S",
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={bpaec.StudyInstanceUID}",
        "SeriesInstanceUID",
        "Modality=SM",
        "NumberOfSeriesRelatedInstances",
    )
    assert len(series) == 1 and series[0].SeriesInstanceUID == bpaec.SeriesInstanceUID
    images = _find(
        archive,
        tmp_path,
        "-S",
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={bpaec.StudyInstanceUID}",
        f"SeriesInstanceUID={bpaec.SeriesInstanceUID}",
        "SOPInstanceUID",
        "SOPClassUID=1.2.840.10008.5.1.4.1.1.77.1.6",
        "NumberOfFrames",
    )
    assert {i.SOPInstanceUID for i in images} == {read(p).SOPInstanceUID for p in WSI_FILES}
    # Patient Root at IMAGE level, with a wildcard on a patient attribute.
    patient_images = _find(
        archive,
        tmp_path,
        "-P",
        "QueryRetrieveLevel=IMAGE",
        f"PatientID={bpaec.PatientID}" if bpaec.PatientID else "PatientID=*",
        f"StudyInstanceUID={bpaec.StudyInstanceUID}",
        f"SeriesInstanceUID={bpaec.SeriesInstanceUID}",
        "SOPInstanceUID",
    )
    assert len(patient_images) == len(WSI_FILES)


def test_calling_and_called_ae_titles_are_checked(fresh_server) -> None:
    """Only peers of dimse_peers, only to our AE title: A-ASSOCIATE-RJ rejected-permanent,
    service-user, calling (3) or called (7) AE title not recognised (PS3.8 Table 9-21)."""
    server = fresh_server(dimse_peers=json.dumps([{"ae_title": "SCANNER1"}]))
    _wait_port(server.dimse_port)
    port = str(server.dimse_port)
    refused = run("echoscu", "-v", "-aet", "INTRUDER", "-aec", "WSIARCHIVE", "127.0.0.1", port)
    assert refused.returncode != 0
    assert "Calling AE Title Not Recognized" in refused.stdout + refused.stderr
    wrong = run("echoscu", "-v", "-aet", "SCANNER1", "-aec", "NOTUS", "127.0.0.1", port)
    assert wrong.returncode != 0
    assert "Called AE Title Not Recognized" in wrong.stdout + wrong.stderr
    allowed = run("echoscu", "-aet", "SCANNER1", "-aec", "WSIARCHIVE", "127.0.0.1", port)
    assert allowed.returncode == 0, allowed.stderr
    # dcmtk's default calling AE (ECHOSCU) is no peer: rejected by default.
    default = run("echoscu", "-aec", "WSIARCHIVE", "127.0.0.1", port)
    assert default.returncode != 0


def test_allow_any_calling_ae_is_explicit_and_loud(fresh_server) -> None:
    server = fresh_server(dimse_allow_any_calling_ae="true")
    _wait_port(server.dimse_port)
    anyone = run(
        "echoscu", "-aet", "ANYONE", "-aec", "WSIARCHIVE", "127.0.0.1", str(server.dimse_port)
    )
    assert anyone.returncode == 0, anyone.stderr
    deadline = time.monotonic() + 10
    while "dimse_allow_any_calling_ae is set" not in server.log_path.read_text():
        assert time.monotonic() < deadline, "no start-up warning"
        time.sleep(0.2)


def test_storage_commitment(archive, testdata: Path) -> None:
    stored = read(WSI_FILES[0])
    ae = AE(ae_title="SCANNER")
    ae.add_requested_context("1.2.840.10008.1.20.1")
    reports: list[tuple[int, pydicom.Dataset]] = []

    from pynetdicom import evt

    def on_report(event):  # type: ignore[no-untyped-def]
        reports.append((event.event_type, event.event_information))
        return 0x0000, None

    ae.add_supported_context("1.2.840.10008.1.20.1", scu_role=True, scp_role=True)
    assoc = ae.associate(
        "127.0.0.1",
        archive.dimse_port,
        ae_title="WSIARCHIVE",
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)],
    )
    assert assoc.is_established
    request = pydicom.Dataset()
    request.TransactionUID = pydicom.uid.generate_uid()
    good = pydicom.Dataset()
    good.ReferencedSOPClassUID = stored.SOPClassUID
    good.ReferencedSOPInstanceUID = stored.SOPInstanceUID
    missing = pydicom.Dataset()
    missing.ReferencedSOPClassUID = stored.SOPClassUID
    missing.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7"
    request.ReferencedSOPSequence = [good, missing]
    status, _ = assoc.send_n_action(request, 1, "1.2.840.10008.1.20.1", "1.2.840.10008.1.20.1.1")
    assert status.Status == 0x0000
    deadline = time.monotonic() + 10
    while not reports and time.monotonic() < deadline:
        time.sleep(0.1)
    assoc.release()
    assert reports, "no N-EVENT-REPORT arrived"
    event_type, report = reports[0]
    assert event_type == 2  # some failures
    assert report.TransactionUID == request.TransactionUID
    assert [i.ReferencedSOPInstanceUID for i in report.ReferencedSOPSequence] == [
        stored.SOPInstanceUID
    ]
    assert report.FailedSOPSequence[0].ReferencedSOPInstanceUID == "1.2.3.4.5.6.7"
    assert report.FailedSOPSequence[0].FailureReason == 0x0112


def test_tls(fresh_server, tmp_path: Path) -> None:
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    server = fresh_server(tls_certificate=str(certificate), tls_key=str(key), dimse_peers=PEERS)
    _wait_port(server.dimse_port)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certificate))
    context.check_hostname = False
    ae = AE(ae_title="TLSCLIENT")
    ae.add_requested_context(Verification)
    assoc = ae.associate(
        "127.0.0.1", server.dimse_port, ae_title="WSIARCHIVE", tls_args=(context, None)
    )
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    plain = run("echoscu", "-to", "5", "-aec", "WSIARCHIVE", "127.0.0.1", str(server.dimse_port))
    assert plain.returncode != 0


def test_large_instance_over_storescu(fresh_server, tmp_path: Path) -> None:
    """A 1 GB synthetic WSI pushed with storescu: stored whole, the listener's memory flat."""
    from benchmarks.synthetic import write_wsi

    source = tmp_path / "large.dcm"
    uids = write_wsi(source, 1_050_000_000)
    server = fresh_server(dimse_peers=PEERS)
    _wait_port(server.dimse_port)
    result = run(
        "storescu",
        "-aec",
        "WSIARCHIVE",
        "-R",
        "-xy",
        "127.0.0.1",
        str(server.dimse_port),
        str(source),
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    url = (
        f"{server.url}/studies/{uids['study']}/series/{uids['series']}/instances/"
        f"{uids['instance']}/frames/{uids['frames']}"
    )
    got = requests.get(url, headers={"Accept": "image/jpeg"})
    assert got.status_code == 200
    import os

    fd = os.open(source, os.O_RDONLY)
    try:
        from storage.dicom.part10 import read_part10

        table = read_part10(source).frames
        offset, length = table.ranges(uids["frames"] - 1)[0]  # type: ignore[union-attr]
        assert got.content == os.pread(fd, length, offset)
    finally:
        os.close(fd)
    peak = _dimse_peak_rss_mb(server)
    assert peak < 400, f"the DICOM listener peaked at {peak:.0f} MB for a 1 GB instance"


def _dimse_peak_rss_mb(server: ArchiveServer) -> float:
    return int(server.listener_status()["VmHWM"].split()[0]) / 1024


ORTHANC = shutil.which("Orthanc")


@pytest.mark.skipif(ORTHANC is None, reason="Debian's orthanc is not installed")
def test_orthanc_as_a_peer(fresh_server, testdata: Path, tmp_path: Path) -> None:
    http_port, dicom_port = free_port(), free_port()
    archive = fresh_server(dimse_destinations=f"ORTHANC=127.0.0.1:{dicom_port}", dimse_peers=PEERS)
    _wait_port(archive.dimse_port)
    config = {
        "Name": "peer",
        "StorageDirectory": str(tmp_path / "storage"),
        "IndexDirectory": str(tmp_path / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {"archive": ["WSIARCHIVE", "127.0.0.1", archive.dimse_port]},
    }
    (tmp_path / "orthanc.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        ["Orthanc", str(tmp_path / "orthanc.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(http_port)
        _wait_port(dicom_port)
        orthanc = f"http://127.0.0.1:{http_port}"
        source = testdata / "dicom/ezwsi_multiframe_camelyon_challenge_image.dcm"
        uploaded = requests.post(orthanc + "/instances", data=source.read_bytes()).json()
        # Orthanc C-STOREs into the archive ...
        sent = requests.post(
            orthanc + "/modalities/archive/store",
            json={"Resources": [uploaded["ID"]], "Synchronous": True},
        )
        assert sent.status_code == 200, sent.text
        dataset = read(source)
        url = (
            f"{archive.url}/studies/{dataset.StudyInstanceUID}/series/"
            f"{dataset.SeriesInstanceUID}/instances/{dataset.SOPInstanceUID}"
        )
        got = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert got.status_code == 200
        copy = tmp_path / "from-orthanc.dcm"
        copy.write_bytes(got.content)
        assert dataset_bytes(copy) == dataset_bytes(source)
        # ... and the archive C-MOVEs a slide of its own to Orthanc, bytes intact.
        ours = testdata / JPEG_WSI
        body, content_type = multipart_body([ours.read_bytes()])
        assert (
            requests.post(
                archive.url + "/studies", data=body, headers={"Content-Type": content_type}
            ).status_code
            == 200
        )
        moved = read(ours)
        assert _move(archive, "ORTHANC", moved) == 0x0000
        found = requests.post(
            orthanc + "/tools/find",
            json={"Level": "Instance", "Query": {"SOPInstanceUID": moved.SOPInstanceUID}},
        ).json()
        assert len(found) == 1
        back = tmp_path / "in-orthanc.dcm"
        back.write_bytes(requests.get(f"{orthanc}/instances/{found[0]}/file").content)
        assert dataset_bytes(back) == dataset_bytes(ours)
    finally:
        process.terminate()
        process.wait()


def _move(archive, destination: str, dataset: pydicom.Dataset) -> int:  # type: ignore[no-untyped-def]
    """C-MOVE the study of *dataset* from the archive to *destination* with pynetdicom."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

    ae = AE(ae_title="MOVER")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", archive.dimse_port, ae_title="WSIARCHIVE")
    assert assoc.is_established
    query = pydicom.Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = dataset.StudyInstanceUID
    statuses = [
        s.Status
        for s, _ in assoc.send_c_move(
            query, destination, StudyRootQueryRetrieveInformationModelMove
        )
    ]
    assoc.release()
    return statuses[-1]


def test_move_decompresses_for_a_peer_that_takes_uncompressed_only(
    fresh_server, testdata: Path, tmp_path: Path
) -> None:
    # storescp without options accepts uncompressed transfer syntaxes only: the JPEG WSI is
    # decompressed (frame by frame, into a temporary file) and arrives with every pixel of
    # the decoded original.
    import imagecodecs
    from pydicom.pixels import pixel_array

    folder = tmp_path / "plain"
    folder.mkdir()
    with running_storescp(folder, "PLAIN") as port:
        server = fresh_server(dimse_destinations=f"PLAIN=127.0.0.1:{port}", dimse_peers=PEERS)
        _wait_port(server.dimse_port)
        source = testdata / JPEG_WSI
        server.store([source.read_bytes()])
        dataset = read(source)
        result = run(
            "movescu",
            "-aec",
            "WSIARCHIVE",
            "-aem",
            "PLAIN",
            "-S",
            "-k",
            "QueryRetrieveLevel=SERIES",
            "-k",
            f"StudyInstanceUID={dataset.StudyInstanceUID}",
            "-k",
            f"SeriesInstanceUID={dataset.SeriesInstanceUID}",
            "127.0.0.1",
            str(server.dimse_port),
        )
        assert result.returncode == 0, result.stderr
        received = list(folder.glob(f"*{dataset.SOPInstanceUID}*"))
        assert len(received) == 1, result.stdout + result.stderr
        arrived = pydicom.dcmread(received[0])
        assert arrived.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert arrived.SOPInstanceUID == dataset.SOPInstanceUID
        expected = [imagecodecs.jpeg8_decode(frame) for frame in frames(source)]
        assert (pixel_array(arrived) == expected).all()
        staging = server.data_dir / "blobs" / ".staging"
        assert not list(staging.glob("dimse-*"))  # the temporary file is gone
