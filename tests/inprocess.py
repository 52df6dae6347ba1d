"""The in-process layer's means: an archive on a temporary SQLite index and filesystem, data
stored into it through the one ingest, and Flask's test client over the DICOMweb app."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from pydicom.dataset import Dataset

from dicomweb import create_app
from storage import Archive, open_archive
from storage.access import ALL_SCOPES, Principal, PrincipalKind
from storage.records import StoredInstance
from wsiarchive.settings import AnonymousAccess, Settings

BASE_URL = "http://archive.test/dicomweb"
# The principal tests act as when they call the archive directly: every scope, every study.
TESTER = Principal("tests", PrincipalKind.LOCAL, ALL_SCOPES)


def settings_for(root: Path, **values: Any) -> Settings:
    """The default settings with the archive under *root* (and any *values* changed)."""
    # Flask's test client comes from 127.0.0.1: anonymous access on loopback, as the tests of
    # the transactions need; tests of identity set anonymous_access themselves.
    # No upload admission limit: Flask's test client keeps a response's slot until it is
    # closed (tests/dicomweb/test_transport.py tests the limit itself).
    defaults = Settings(
        data_dir=str(root),
        base_url=BASE_URL,
        anonymous_access=AnonymousAccess.LOOPBACK,
        max_uploads=-1,
    )
    return replace(defaults, **values)


def part10(dataset: Dataset) -> bytes:
    """A data set as the bytes of a Part-10 file."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def store(archive: Archive, data: bytes | Dataset) -> StoredInstance:
    """Store Part-10 bytes (or a data set) through the archive's one ingest."""
    staged = archive.stage()
    staged.write(part10(data) if isinstance(data, Dataset) else data)
    return archive.ingest(staged, who=TESTER)


def client(archive: Archive, settings: Settings) -> FlaskClient:
    """Flask's test client over the DICOMweb app of *archive*."""
    return create_app(archive, settings).test_client()


def open_at(root: Path, **values: Any) -> tuple[Archive, Settings]:
    settings = settings_for(root, **values)
    return open_archive(settings), settings


def multiframe(frames: int, rows: int = 16, columns: int = 16, seed: int = 1) -> Dataset:
    """A Multi-frame Grayscale Byte Secondary Capture instance made here: *frames* frames of
    random 8-bit pixels, native (Explicit VR Little Endian)."""
    import numpy as np
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = np.random.default_rng(seed).integers(0, 256, (frames, rows, columns), np.uint8)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.PatientID, dataset.PatientName, dataset.Modality = "MF1", "Frames^Many", "OT"
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.Rows, dataset.Columns, dataset.NumberOfFrames = rows, columns, frames
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 8, 8, 7
    dataset.PixelRepresentation = 0
    dataset.PixelData = pixels.tobytes()
    return dataset


def instance_url(stored: StoredInstance) -> str:
    return f"/dicomweb/studies/{stored.study}/series/{stored.series}/instances/{stored.instance}"
