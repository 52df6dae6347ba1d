"""Transcoding on retrieval: frames and whole instances in a transfer syntax other than the
stored one, with a bounded cache of transcoded frames."""

from __future__ import annotations

import io
import struct
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from threading import Lock
from typing import TYPE_CHECKING

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID

from storage.blobstore import BlobStore
from storage.errors import CodecError
from storage.index import StoredRecord
from storage.pixels import (
    DEFLATED_LE,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    LOSSY_METHOD,
    NATIVE,
    Encoded,
    ImageInfo,
    decode,
    encode,
    targets,
)
from storage.retrieve import FrameReader

if TYPE_CHECKING:
    from storage.archive import Archive

QUALITY = 90  # of lossy targets; documented in docs/conformance.md


LITTLE_ENDIAN_NATIVE = (EXPLICIT_VR_LE, IMPLICIT_VR_LE, DEFLATED_LE)


def same_pixels(stored: str, target: str) -> bool:
    """Whether frames stored as *stored* are already frames of *target*: little endian native
    frames are the same bytes whatever the VR encoding (or deflation) of the data set; big
    endian ones are not."""
    return stored == target or (
        stored in LITTLE_ENDIAN_NATIVE and target in (EXPLICIT_VR_LE, IMPLICIT_VR_LE)
    )


class FrameCache:
    """A least-recently-used cache of transcoded frames, bounded in bytes."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self.size = 0
        self._frames: OrderedDict[tuple[str, int, str], Encoded] = OrderedDict()
        self._lock = Lock()

    def get(self, key: tuple[str, int, str]) -> Encoded | None:
        with self._lock:
            found = self._frames.get(key)
            if found is not None:
                self._frames.move_to_end(key)
            return found

    def put(self, key: tuple[str, int, str], value: Encoded) -> None:
        if len(value.data) > self.capacity:
            return
        with self._lock:
            previous = self._frames.pop(key, None)
            if previous is not None:
                self.size -= len(previous.data)
            self._frames[key] = value
            self.size += len(value.data)
            while self.size > self.capacity:
                _, dropped = self._frames.popitem(last=False)
                self.size -= len(dropped.data)


class Transcoder:
    """Frames of stored instances in the transfer syntax a client asked for."""

    def __init__(self, cache_bytes: int = 256 << 20) -> None:
        self.cache = FrameCache(cache_bytes)

    def frame(self, reader: FrameReader, info: ImageInfo, number: int, target: str) -> Encoded:
        """Frame *number* of *reader*'s instance, written as *target*."""
        record = reader.record
        if same_pixels(record.transfer_syntax, target):
            return Encoded(reader.read(number), info.photometric)
        key = (record.blob_key, number, target)
        found = self.cache.get(key)
        if found is not None:
            return found
        pixels = decode(reader.read(number), record.transfer_syntax, info)
        encoded = encode(pixels, info, target, QUALITY)
        self.cache.put(key, encoded)
        return encoded

    def instance(
        self, blobs: BlobStore, reader: FrameReader, info: ImageInfo, target: str
    ) -> Iterator[bytes]:
        """The whole Part-10 instance re-encoded as *target*, streamed frame by frame (one
        frame in memory at a time)."""
        record = reader.record
        frames = record.number_of_frames
        first = self.frame(reader, info, 1, target)
        header = _rewritten_header(blobs, record, info, target, first)
        yield header
        if target in NATIVE:
            length = frames * info.native_frame_bytes
            vr = b"OB" if info.bits_allocated <= 8 else b"OW"
            yield struct.pack("<HH2sHI", 0x7FE0, 0x0010, vr, 0, length + length % 2)
            yield from _frames(self, reader, info, target, first, lambda data: [data])
            if length % 2:
                yield b"\x00"
            return
        # Encapsulated (PS3.5 A.4): an empty Basic Offset Table, one fragment per frame.
        yield struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF)
        yield struct.pack("<HHI", 0xFFFE, 0xE000, 0)
        yield from _frames(self, reader, info, target, first, _fragment)
        yield struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def transcode_to_file(
    archive: Archive, record: StoredRecord, target: str, path: Path, transcoder: Transcoder
) -> None:
    """Write the instance of *record* re-encoded as *target* to *path* (a Part-10 file), one
    frame in memory at a time; CodecError when its pixels cannot be converted."""
    info = ImageInfo.from_document(archive.document(record))
    if info is None or target not in targets(record.transfer_syntax, info):
        raise CodecError(
            f"instance {record.instance} stored as {record.transfer_syntax} cannot be "
            f"converted to {target}"
        )
    reader = FrameReader(archive.blobs, record, archive.frame_table(record))
    with open(path, "wb") as fp:
        for chunk in transcoder.instance(archive.blobs, reader, info, target):
            fp.write(chunk)


def _fragment(data: bytes) -> list[bytes]:
    padding = b"\x00" if len(data) % 2 else b""
    return [struct.pack("<HHI", 0xFFFE, 0xE000, len(data) + len(padding)), data, padding]


def _frames(
    transcoder: Transcoder,
    reader: FrameReader,
    info: ImageInfo,
    target: str,
    first: Encoded,
    wrap: Callable[[bytes], list[bytes]],
) -> Iterator[bytes]:
    yield from wrap(first.data)
    for number in range(2, reader.record.number_of_frames + 1):
        yield from wrap(transcoder.frame(reader, info, number, target).data)


def _rewritten_header(
    blobs: BlobStore, record: StoredRecord, info: ImageInfo, target: str, first: Encoded
) -> bytes:
    """The stored data set up to its pixel data, saying what the new pixel data is."""
    with blobs.open(record.blob_key) as fp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset: Dataset = pydicom.dcmread(fp, stop_before_pixels=True)
    for tag in (0x7FE00001, 0x7FE00002):  # the Extended Offset Table belongs to the old data
        if tag in dataset:
            del dataset[tag]
    dataset.PhotometricInterpretation = first.photometric
    if info.samples > 1:
        dataset.PlanarConfiguration = 0
    if first.lossy_method is not None:
        # PS3.3 C.7.6.1.1.5: record the lossy step. The ratio is that of the first frame,
        # written before the others are encoded.
        ratio = info.native_frame_bytes / max(len(first.data), 1)
        methods = list(dataset.get("LossyImageCompressionMethod", []) or [])
        ratios = list(dataset.get("LossyImageCompressionRatio", []) or [])
        if isinstance(methods, str):
            methods = [methods]
        dataset.LossyImageCompression = "01"
        dataset.LossyImageCompressionMethod = [*methods, first.lossy_method]
        dataset.LossyImageCompressionRatio = [*ratios, f"{ratio:.2f}"[:16]]
    meta = FileMetaDataset(dataset.file_meta) if hasattr(dataset, "file_meta") else None
    meta = meta or FileMetaDataset()
    meta.TransferSyntaxUID = UID(target)
    meta.MediaStorageSOPClassUID = record.sop_class
    meta.MediaStorageSOPInstanceUID = record.instance
    dataset.file_meta = meta
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


__all__ = ["LOSSY_METHOD", "FrameCache", "Transcoder", "same_pixels", "transcode_to_file"]
