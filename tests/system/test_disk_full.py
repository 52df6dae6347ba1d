"""A really full disk (a small tmpfs mounted for the test): STOW answers 507, C-STORE A700,
nothing half-stored is left, and a server whose start-up recovery cannot write still serves."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pynetdicom import AE

from storage.index.engine import Database
from storage.index.writes import IndexWriter
from tests.dicomfiles import multipart_body, read
from tests.servers import ArchiveServer

LABEL = "dicom/ezwsi_label_test.dcm"
CAMELYON = "dicom/ezwsi_multiframe_camelyon_challenge_image.dcm"
VL_WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MiB tmpfs at tmp_path/disk (root only: CI runs as root)."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(disk: Path) -> Path:
    """Fill *disk* to the last byte with one file; returns it (delete it to free the disk)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for block in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * block):
                    pass
    finally:
        os.close(fd)
    return filler


def index_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'index.sqlite3'}"


def blobs(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "blobs").rglob("*.dcm") if ".staging" not in p.parts]


def instance_count(server: ArchiveServer) -> int:
    response = requests.get(server.url + "/instances")
    return len(response.json()) if response.status_code == 200 and response.content else 0


def test_full_disk_stow_is_507_and_c_store_a700(small_disk, testdata) -> None:
    server = (
        ArchiveServer(
            small_disk / "data",
            {"workers": "1", "dimse_peers": '[{"ae_title": "FULLTEST", "host": "127.0.0.1"}]'},
            log_dir=small_disk.parent,
        )
        .start()
        .wait_dimse()
    )
    try:
        server.store([(testdata / LABEL).read_bytes()])
        filler = fill(small_disk)
        body, content_type = multipart_body([(testdata / CAMELYON).read_bytes()])
        response = requests.post(
            server.url + "/studies", data=body, headers={"Content-Type": content_type}
        )
        assert response.status_code == 507, response.text
        ae = AE(ae_title="FULLTEST")
        ae.add_requested_context(VL_WSI, read(testdata / CAMELYON).file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="WSIARCHIVE")
        assert assoc.is_established
        status = assoc.send_c_store(read(testdata / CAMELYON))
        assert assoc.is_established, "the listener aborted instead of answering"
        assert status.Status == 0xA700
        assoc.release()
        # Nothing of the refused instances is left: one stored instance, one blob, no claim.
        assert instance_count(server) == 1
        assert len(blobs(server.data_dir)) == 1
        assert (
            IndexWriter(Database.open(index_url(server.data_dir)).engine).abandoned_claims() == []
        )
        # Space returns: writes work again without a restart.
        filler.unlink()
        server.store([(testdata / CAMELYON).read_bytes()])
        assert instance_count(server) == 2
    finally:
        server.stop()


def test_start_up_survives_a_recovery_that_cannot_write(tmp_path, testdata, monkeypatch, caplog):
    """prepare() (what `serve` runs before its workers) logs and goes on when the index is
    full; the real disk cannot be used here: SQLite in WAL mode cannot even open a database
    on a disk with no byte free (its -shm index needs pages), see docs/operations.md."""
    from storage.errors import OutOfResources
    from wsiarchive.server import prepare
    from wsiarchive.settings import Settings

    settings = Settings(data_dir=str(tmp_path / "data"))
    writer = IndexWriter(Database.open(settings.database).engine)
    writer.claim("1.2.826.0.1.3680043.10.999.1", "1/2/x.dcm", False)

    def full(*_args: object) -> None:
        raise OutOfResources("the index cannot write: database or disk is full")

    monkeypatch.setattr(IndexWriter, "release", full)
    with caplog.at_level("WARNING"):
        prepare(settings)
    assert "disk is full" in caplog.text
    monkeypatch.undo()
    prepare(settings)  # space is back: the claim is released
    assert writer.abandoned_claims() == []


def test_sqlite_full_is_out_of_resources(tmp_path) -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from storage.index.writes import is_disk_full

    full = OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))
    locked = OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
    assert is_disk_full(full) and not is_disk_full(locked)
