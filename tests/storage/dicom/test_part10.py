"""Truncated, lying, deflated and NUL-padded Part-10 objects: refused with a readable reason and
nothing stored, or stored byte for byte with frames an independent reader agrees with."""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

from storage.errors import InvalidInstance, InvalidUID
from tests.dicomfiles import frames, multipart_body
from tests.inprocess import TESTER, client, multiframe, open_at, part10, store

LABEL = "dicom/ezwsi_label_test.dcm"  # JPEG, 1 frame
CAMELYON = "dicom/ezwsi_multiframe_camelyon_challenge_image.dcm"  # JPEG, 15 frames
RAW = "dicom/wsi2dcm_raw.dcm"  # native, 12 frames


def _pixel_offset(data: bytes) -> int:
    return data.rindex(b"\xe0\x7f\x10\x00")


def _truncated_header(data: bytes) -> bytes:
    return data[:400]


def _value_length_beyond_end(data: bytes) -> bytes:
    """The first Study Description-like LO element before Pixel Data claims 60000 bytes."""
    at = data.index(b"\x08\x00\x60\x00CS")  # Modality (0008,0060) CS
    return data[: at + 6] + struct.pack("<H", 0xFFF0) + data[at + 8 :]


def _items_past_end(data: bytes) -> bytes:
    return data[: len(data) - 300]


def _frames_beyond_items(data: bytes) -> bytes:
    dataset = pydicom.dcmread(io.BytesIO(data))
    dataset.NumberOfFrames = int(dataset.NumberOfFrames) + 5
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def _cut_at_pixel_data(data: bytes) -> bytes:
    """Cut exactly where the Pixel Data element begins: every element left is whole."""
    return data[: _pixel_offset(data)]


DAMAGE = {
    "header cut short": (CAMELYON, _truncated_header),
    "value length beyond the end": (CAMELYON, _value_length_beyond_end),
    "fragments past the end": (CAMELYON, _items_past_end),
    "native pixel data past the end": (RAW, _items_past_end),
    "more frames than fragments": (CAMELYON, _frames_beyond_items),
    "more frames than native pixel data": (RAW, _frames_beyond_items),
    "cut at the Pixel Data element": (CAMELYON, _cut_at_pixel_data),
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_damaged_object_is_refused_over_stow(damage, tmp_path, testdata) -> None:
    name, damaged = DAMAGE[damage]
    archive, settings = open_at(tmp_path)
    data = damaged((testdata / name).read_bytes())
    body, content_type = multipart_body([data])
    response = client(archive, settings).post(
        "/dicomweb/studies", data=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    failures = response.get_json().get("00081198", response.get_json().get("0008119A"))
    assert failures["Value"][0]["00081197"]["Value"] == [0xC000]
    warning = response.headers["Warning"].lower()
    assert "truncated" in warning or "frames" in warning
    # Nothing stored, nothing listed, no blob.
    listed = client(archive, settings).get("/dicomweb/instances")
    assert listed.status_code in (200, 204) and not listed.get_json(silent=True)
    assert [p for p in (tmp_path / "blobs").rglob("*.dcm")] == []


def _deflated(path: Path, target: Path) -> Path:
    """The object re-encoded as Deflated Explicit VR Little Endian by pydicom."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = pydicom.dcmread(path)
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    dataset.save_as(target, enforce_file_format=True)
    return target


def test_deflated_instance_is_stored_byte_for_byte_with_its_frames(tmp_path) -> None:
    source = tmp_path / "native.dcm"
    source.write_bytes(part10(multiframe(6, 24, 20)))
    deflated = _deflated(source, tmp_path / "deflated.dcm")
    data = deflated.read_bytes()
    assert len(data) < source.stat().st_size  # really deflated
    archive, settings = open_at(tmp_path / "archive")
    stored = store(archive, data)
    assert stored.number_of_frames == 6
    record = archive.records(stored.study, who=TESTER)[0]
    assert b"".join(archive.instance_stream(record, record.transfer_syntax).chunks) == data
    expected = frames(deflated)  # pydicom inflates independently
    reader = archive.frames(record)
    assert [reader.read(n) for n in range(1, 7)] == expected
    web = client(archive, settings)
    url = (
        f"/dicomweb/studies/{stored.study}/series/{stored.series}/instances/"
        f"{stored.instance}/frames/6"
    )
    response = web.get(url, headers={"Accept": "multipart/related; type=application/octet-stream"})
    assert response.status_code == 200
    assert expected[5] in response.get_data()


def test_deflated_instance_with_missing_frames_is_refused(tmp_path) -> None:
    dataset = multiframe(4)
    dataset.NumberOfFrames = 9
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    archive, _ = open_at(tmp_path)
    with pytest.raises(InvalidInstance, match="frames"):
        store(archive, buffer.getvalue())


def _with_uid(data: bytes, old: str, new: bytes) -> bytes:
    """Replace the SOP Instance UID element's value (0008,0018) with raw bytes *new*."""
    raw_old = old.encode() + (b"\0" if len(old) % 2 else b"")
    element = b"\x08\x00\x18\x00UI" + struct.pack("<H", len(raw_old)) + raw_old
    assert element in data
    padded = new + (b"\0" if len(new) % 2 else b"")
    return data.replace(element, b"\x08\x00\x18\x00UI" + struct.pack("<H", len(padded)) + padded)


def test_uid_with_an_embedded_nul_is_refused(tmp_path) -> None:
    dataset = multiframe(1)
    dataset.SOPInstanceUID = "1.2.3.4.5"
    data = _with_uid(part10(dataset), "1.2.3.4.5", b"1.2.3\x004.5")
    archive, settings = open_at(tmp_path)
    with pytest.raises(InvalidUID, match="NUL"):
        store(archive, data)
    body, content_type = multipart_body([data])
    response = client(archive, settings).post(
        "/dicomweb/studies", data=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert "NUL" in response.headers["Warning"]
    assert [p for p in (tmp_path / "blobs").rglob("*.dcm")] == []


def test_trailing_nul_padding_is_read_the_same_everywhere(tmp_path) -> None:
    dataset = multiframe(1)
    dataset.SOPInstanceUID = "1.2.3.4.55"
    data = _with_uid(part10(dataset), "1.2.3.4.55", b"1.2.3.4.5\0")  # odd UID + its NUL
    archive, settings = open_at(tmp_path)
    stored = store(archive, data)
    assert stored.instance == "1.2.3.4.5"
    record = archive.records(stored.study, who=TESTER)[0]
    assert record.instance == "1.2.3.4.5"
    assert record.blob_key.split("/")[-1].startswith("1.2.3.4.5.")
    assert archive.document(record).text("00080018") == "1.2.3.4.5"
    # A trailing space (real writers pad so) is the same UID, so a duplicate.
    spaced = _with_uid(part10(dataset), "1.2.3.4.55", b"1.2.3.4.5 ")
    response = client(archive, settings).post(
        "/dicomweb/studies",
        data=multipart_body([spaced])[0],
        headers={"Content-Type": multipart_body([spaced])[1]},
    )
    assert response.status_code == 409
