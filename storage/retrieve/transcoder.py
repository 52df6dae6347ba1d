"""Transcoding on retrieval: frames and whole instances in a transfer syntax other than the
stored one, with a bounded cache of transcoded frames."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator
from itertools import chain

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID

from storage.blobs import BlobStore
from storage.cache import Lru
from storage.dicom.dataset import values
from storage.dicom.part10 import read_header
from storage.dicom.syntaxes import NATIVE, same_pixels
from storage.imaging.codecs import Encoded, ImageInfo, decode, encode
from storage.records import ByteStream, StoredRecord
from storage.retrieve.frames import FrameReader

QUALITY = 90  # of lossy targets; documented in docs/conformance.md
FrameKey = tuple[str, int, str]  # blob key, frame number, target transfer syntax


class Transcoder:
    """Frames of stored instances in the transfer syntax a client asked for."""

    def __init__(self, cache_bytes: int) -> None:
        self.cache: Lru[FrameKey, Encoded] = Lru(
            max_bytes=cache_bytes, size=lambda encoded: len(encoded.data), name="transcoded"
        )

    def frame(
        self, reader: FrameReader, info: ImageInfo, number: int, target: str, cached: bool = True
    ) -> Encoded:
        """Frame *number* of *reader*'s instance, written as *target*."""
        record = reader.record
        if same_pixels(record.transfer_syntax, target):
            return Encoded(reader.read(number), info.photometric)
        key = (record.blob_key, number, target)
        found = self.cache.get(key) if cached else None
        if found is not None:
            return found
        pixels = decode(reader.read(number), record.transfer_syntax, info)
        encoded = encode(pixels, info, target, QUALITY)
        if cached:
            self.cache.put(key, encoded)
        return encoded

    def instance(
        self,
        blobs: BlobStore,
        reader: FrameReader,
        info: ImageInfo,
        target: str,
        cached: bool = True,
    ) -> ByteStream:
        """The whole Part-10 instance re-encoded as *target*, streamed frame by frame (one
        frame in memory at a time). The first frame and the header are made before this
        returns, so what fails early fails here. The length is known for native targets.
        *cached*: keep the transcoded frames for later requests (a sender that needs each
        frame once passes False)."""
        record = reader.record

        def frame(number: int) -> Encoded:
            return self.frame(reader, info, number, target, cached)

        first = frame(1)
        header = _rewritten_header(blobs, record, info, target, first)
        if target in NATIVE:
            pixels = record.number_of_frames * info.native_frame_bytes
            vr = b"OB" if info.bits_allocated <= 8 else b"OW"
            element = struct.pack("<HH2sHI", 0x7FE0, 0x0010, vr, 0, pixels + pixels % 2)
            padding = [b"\x00"] if pixels % 2 else []
            native = chain(
                [header, element], _frames(record, first, frame, lambda data: [data]), padding
            )
            return ByteStream(native, len(header) + len(element) + pixels + len(padding))
        # Encapsulated (PS3.5 A.4): an empty Basic Offset Table, one fragment per frame.
        encapsulated = chain(
            [
                header,
                struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF),
                struct.pack("<HHI", 0xFFFE, 0xE000, 0),
            ],
            _frames(record, first, frame, _fragment),
            [struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)],
        )
        return ByteStream(encapsulated, None)


def _fragment(data: bytes) -> list[bytes]:
    padding = b"\x00" if len(data) % 2 else b""
    return [struct.pack("<HHI", 0xFFFE, 0xE000, len(data) + len(padding)), data, padding]


def _frames(
    record: StoredRecord,
    first: Encoded,
    frame: Callable[[int], Encoded],
    wrap: Callable[[bytes], list[bytes]],
) -> Iterator[bytes]:
    yield from wrap(first.data)
    for number in range(2, record.number_of_frames + 1):
        yield from wrap(frame(number).data)


def _rewritten_header(
    blobs: BlobStore, record: StoredRecord, info: ImageInfo, target: str, first: Encoded
) -> bytes:
    """The stored data set up to its pixel data, saying what the new pixel data is."""
    with blobs.open(record.blob_key) as fp:
        dataset: Dataset = read_header(fp)
    for tag in (0x7FE00001, 0x7FE00002):  # the Extended Offset Table belongs to the old data
        if tag in dataset:
            del dataset[tag]
    dataset.PhotometricInterpretation = first.photometric
    if info.samples > 1:
        dataset.PlanarConfiguration = 0
    if first.lossy_method is not None:
        # PS3.3 C.7.6.1.1.5: record the lossy step after those before it (each of these
        # attributes may hold one value or several). The ratio is that of the first frame,
        # written before the others are encoded.
        ratio = info.native_frame_bytes / max(len(first.data), 1)
        methods = [str(v) for v in values(dataset, "LossyImageCompressionMethod")]
        ratios = [str(v) for v in values(dataset, "LossyImageCompressionRatio")]
        dataset.LossyImageCompression = "01"
        dataset.LossyImageCompressionMethod = [*methods, first.lossy_method]
        dataset.LossyImageCompressionRatio = [*ratios, f"{ratio:.2f}"[:16]]
    meta = FileMetaDataset(dataset.file_meta) if hasattr(dataset, "file_meta") else None
    meta = meta or FileMetaDataset()
    meta.TransferSyntaxUID = UID(target)
    meta.MediaStorageSOPClassUID = UID(record.sop_class)
    meta.MediaStorageSOPInstanceUID = UID(record.instance)
    dataset.file_meta = meta
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
