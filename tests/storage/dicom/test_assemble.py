"""Building a Part-10 instance from DICOM JSON and bulk data files (storage.dicom.assemble):
bulk data is copied in chunks, never held whole, at the top level and inside sequences."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from pathlib import Path

import pydicom
import pytest

from storage.dicom.assemble import BulkPart, write_instance
from storage.dicom.syntaxes import ExplicitVRLittleEndian
from tests.inprocess import multiframe

BULK_BYTES = 48 << 20


def _no_pixel_syntax(part: BulkPart) -> str:
    return ExplicitVRLittleEndian


@pytest.mark.parametrize("nested", [False, True], ids=["pixel-data", "in-a-sequence"])
def test_bulk_data_is_streamed(tmp_path: Path, nested: bool) -> None:
    dataset = multiframe(1, 4, 4, seed=1)
    obj = dataset.to_json_dict(bulk_data_threshold=1 << 30)
    del obj["7FE00010"]
    path = tmp_path / "bulk"
    with path.open("wb") as out:
        for index in range(BULK_BYTES >> 20):
            out.write(bytes([index]) * (1 << 20))
    bulk = {"vr": "OF", "BulkDataURI": "big"}
    if nested:  # Point Coordinates Data in an Annotation Group Sequence item, as in an ANN
        obj["006A0002"] = {
            "vr": "SQ",
            "Value": [{"00660016": bulk, "0040A180": {"vr": "US", "Value": [1]}}],
        }
    else:
        obj["7FE00010"] = {"vr": "OB", "BulkDataURI": "big"}
    part = BulkPart(2, path, BULK_BYTES, "application/octet-stream", None)
    digest, size = hashlib.sha256(), [0]

    def write(data: bytes) -> None:
        digest.update(data)
        size[0] += len(data)

    tracemalloc.start()
    write_instance(obj, lambda uri: [part], _no_pixel_syntax, write)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert size[0] > BULK_BYTES
    print(f"peak {peak} bytes of Python memory while copying {BULK_BYTES}")
    assert peak < 4 << 20, f"peak {peak} bytes while copying {BULK_BYTES}"

    # The same instance, kept this time, is what pydicom reads.
    out = io.BytesIO()
    write_instance(obj, lambda uri: [part], _no_pixel_syntax, out.write)
    back = pydicom.dcmread(io.BytesIO(out.getvalue()))
    value = back.AnnotationGroupSequence[0].PointCoordinatesData if nested else back.PixelData
    assert value == path.read_bytes()
    assert back.SOPInstanceUID == dataset.SOPInstanceUID
    assert hashlib.sha256(out.getvalue()).hexdigest() == digest.hexdigest()
