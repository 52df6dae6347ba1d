"""The two-phase ingest in process: a failure or crash at any step of a write leaves no half
instance and damages nothing stored."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from storage import Archive
from storage.blobs import FilesystemBlobStore
from storage.dicom.dataset import Identity
from storage.dicom.part10 import read_part10
from storage.errors import OutOfResources
from storage.index.engine import Database
from storage.index.writes import IndexWriter
from tests.dicomfiles import read
from tests.inprocess import TESTER
from wsiarchive.settings import Settings

LABEL = "dicom/ezwsi_label_test.dcm"


class Parts:
    """An archive on *root* and the collaborators it was made of, for injecting faults."""

    def __init__(self, root: Path, policy: str = "reject", blobs: type = FilesystemBlobStore):
        config = Settings(data_dir=str(root), duplicate_policy=policy)  # type: ignore[arg-type]
        database = Database.open(config.database)
        self.blobs = blobs(config.blobs, config.fsync)
        self.index = IndexWriter(database.engine)
        self.archive = Archive(database, self.blobs, config)


def make_archive(root: Path, policy: str = "reject") -> Archive:
    return Parts(root, policy).archive


def blob_files(root: Path) -> list[Path]:
    return [p for p in (root / "blobs").rglob("*") if p.is_file()]


class FullDisk(FilesystemBlobStore):
    """A blob store whose disk fills up as a blob is placed."""

    def place(self, staged, key) -> None:  # type: ignore[no-untyped-def]
        raise OutOfResources("the archive cannot write: No space left on device")


def test_disk_full_while_placing_leaves_nothing(tmp_path, testdata) -> None:
    parts = Parts(tmp_path, blobs=FullDisk)
    archive = parts.archive
    with pytest.raises(OutOfResources):
        archive.ingest_file(testdata / LABEL, who=TESTER)
    assert blob_files(tmp_path) == []
    study = read(testdata / LABEL).StudyInstanceUID
    with pytest.raises(Exception, match="no stored study"):
        archive.records(study, who=TESTER)
    assert parts.index.abandoned_claims() == []


def test_staging_write_reports_disk_full(tmp_path, monkeypatch) -> None:
    archive = make_archive(tmp_path)
    staged = archive.stage()

    def no_space(_fd, _data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.write", no_space)
    with pytest.raises(OutOfResources, match="No space"):
        staged.write(b"x" * 10)
    monkeypatch.undo()
    staged.discard()
    assert blob_files(tmp_path) == []


def test_failure_while_committing_leaves_nothing(tmp_path, testdata, monkeypatch) -> None:
    parts = Parts(tmp_path)

    def broken(*_args, **_kwargs):
        raise RuntimeError("index went away")

    monkeypatch.setattr(IndexWriter, "commit_all", broken)
    with pytest.raises(RuntimeError):
        parts.archive.ingest_file(testdata / LABEL, who=TESTER)
    assert blob_files(tmp_path) == []
    assert parts.index.abandoned_claims() == []


def _crash_after_placing(parts: Parts, path: Path) -> str:
    """Do an ingest's first two phases (claim, blob in place) and 'crash' before the commit."""
    staged = parts.blobs.stage_copy(path)
    identity = Identity.of(read_part10(staged.path).dataset)
    key = f"{identity.study}/{identity.series}/{identity.instance}.crashed.dcm"
    parts.index.claim(identity.instance, key, parts.archive.duplicate_policy == "overwrite")
    parts.blobs.place(staged, key)
    return key


def test_crash_before_commit_is_undone_at_start(tmp_path, testdata) -> None:
    parts = Parts(tmp_path)
    archive = parts.archive
    key = _crash_after_placing(parts, testdata / LABEL)
    assert (tmp_path / "blobs" / key).exists()
    # Not visible while the claim is open ...
    with pytest.raises(Exception, match="no stored study"):
        archive.records(read(testdata / LABEL).StudyInstanceUID, who=TESTER)
    # ... and gone after the recovery a restart runs.
    restarted = Parts(tmp_path)
    assert restarted.archive.recover() == 1
    assert blob_files(tmp_path) == []
    assert restarted.index.abandoned_claims() == []
    # The instance can then be stored normally.
    stored = restarted.archive.ingest_file(testdata / LABEL, who=TESTER)
    assert stored.instance == read(testdata / LABEL).SOPInstanceUID


def test_crash_while_overwriting_keeps_the_stored_instance(tmp_path, testdata) -> None:
    parts = Parts(tmp_path, "overwrite")
    parts.archive.ingest_file(testdata / LABEL, who=TESTER)
    original = blob_files(tmp_path)
    assert len(original) == 1
    _crash_after_placing(parts, testdata / LABEL)
    restarted = make_archive(tmp_path, "overwrite")
    restarted.recover()
    assert blob_files(tmp_path) == original
    dataset = read(testdata / LABEL)
    record = restarted.records(dataset.StudyInstanceUID, who=TESTER)[0]
    assert (tmp_path / "blobs" / record.blob_key).read_bytes() == (testdata / LABEL).read_bytes()


def test_files_stored_as_one_are_all_undone_when_one_fails(tmp_path, testdata) -> None:
    """A converted slide's instances: the third is stored already, so none of them is."""
    import shutil

    parts = Parts(tmp_path)
    archive = parts.archive
    names = [LABEL, "dicom/wsi2dcm_jpeg.dcm", "dicom/ezwsi_multiframe_camelyon_challenge_image.dcm"]
    archive.ingest_file(testdata / names[2], who=TESTER)
    before = blob_files(tmp_path)
    files = []
    for name in names:
        files.append(archive.workspace() / "instance.dcm")
        shutil.copyfile(testdata / name, files[-1])
    with pytest.raises(Exception, match="stored already"):
        archive.ingest_staged_files(files, who=TESTER)
    assert blob_files(tmp_path) == before
    assert parts.index.abandoned_claims() == []
    for name in names[:2]:
        with pytest.raises(Exception, match="no stored study"):
            archive.records(read(testdata / name).StudyInstanceUID, who=TESTER)
    assert not any(f.exists() for f in files)  # consumed either way
    stored = archive.ingest_staged_files(
        [shutil.copyfile(testdata / n, archive.workspace() / "i.dcm") for n in names[:2]],
        who=TESTER,
    )
    assert [s.instance for s in stored] == [read(testdata / n).SOPInstanceUID for n in names[:2]]
