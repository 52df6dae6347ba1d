"""The fast path for slides whose every tile is copied as it is: headers from wsidicom, pixel
data streamed tile by tile from opentile straight into the file.

wsidicom's writer moves each tile through producer and writer threads; when there is nothing
to decode, encode or generate, a single tight loop does the same work several times faster.
Used only when every image of the slide qualifies (see ``eligible``); otherwise the converter
falls back to wsidicom's writer.
"""

from __future__ import annotations

import io
import struct
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit, generate_uid

from storage.blobstore import DirectWriter

COPYABLE = {JPEGBaseline8Bit, JPEG2000, JPEG2000Lossless}
_ITEM = struct.Struct("<HHI")
_EOT_TAG = b"\xe0\x7f\x01\x00OV\x00\x00"
_EOT_LENGTHS_TAG = b"\xe0\x7f\x02\x00OV\x00\x00"
BATCH = 256


def _groups(wsi, include_label: bool, include_overview: bool, include_thumbnail: bool):  # type: ignore[no-untyped-def]
    groups = list(wsi.levels)
    if include_label:
        groups += list(wsi.labels or [])
    if include_overview:
        groups += list(wsi.overviews or [])
    if include_thumbnail:
        groups += list(getattr(wsi.pyramid, "thumbnails", None) or [])
    return groups


def eligible(wsi, options) -> bool:  # type: ignore[no-untyped-def]
    """True when every image is one opentile instance whose tiles are copied unchanged and no
    pyramid level would have to be generated."""
    from wsidicomizer.sources import OpenTileSource

    if not isinstance(getattr(wsi, "_source", None), OpenTileSource):
        return False
    groups = _groups(
        wsi, options.include_label, options.include_overview, options.include_thumbnail
    )
    for group in groups:
        instances = list(group.instances.values())
        if len(instances) != 1:
            return False
        data = instances[0].image_data
        if getattr(data, "needs_transcoding", True) or data.transfer_syntax not in COPYABLE:
            return False
        if len(data.focal_planes) != 1 or len(data.optical_paths) != 1:
            return False
    if options.add_missing_levels:
        levels = list(wsi.levels)
        base = levels[0].size.width
        for index, level in enumerate(levels):
            if abs(base / level.size.width - 2**index) > 0.01 * 2**index:
                return False  # a gap in the 2x series: a level must be generated
        smallest = levels[-1].default_instance.image_data
        if smallest.tiled_size.width > 1 or smallest.tiled_size.height > 1:
            return False
    return True


def write(wsi, work: Path, options) -> list[Path]:  # type: ignore[no-untyped-def]
    """Write every image of *wsi* into *work*; returns the files."""
    files = []
    groups = _groups(
        wsi, options.include_label, options.include_overview, options.include_thumbnail
    )
    for number, group in enumerate(groups, start=1):
        instance = group.default_instance
        data = instance.image_data
        dataset = instance.dataset.as_tiled_full(
            data.focal_planes, data.optical_paths, data.tiled_size
        )
        uid = generate_uid()
        dataset.SOPInstanceUID = uid
        dataset.InstanceNumber = number
        now = datetime.now()  # as wsidicom's writer stamps the content
        dataset.ContentDate = now.strftime("%Y%m%d")
        dataset.ContentTime = now.strftime("%H%M%S.%f")
        path = work / f"{uid}.dcm"
        _write_instance(path, dataset, data)
        files.append(path)
    return files


def _write_instance(path: Path, dataset, data) -> None:  # type: ignore[no-untyped-def]
    """Header (with Extended Offset Table placeholders), then the tiles in TILED_FULL order,
    then the offsets written into the placeholders."""
    tiled = data.tiled_size
    count = tiled.width * tiled.height
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = data.transfer_syntax
    dataset.file_meta = meta
    dataset.ExtendedOffsetTable = bytes(8 * count)
    dataset.ExtendedOffsetTableLengths = bytes(8 * count)
    header = io.BytesIO()
    dcmwrite(header, dataset, enforce_file_format=True)
    head = header.getvalue()
    eot_at = head.rindex(_EOT_TAG) + 12
    lengths_at = head.rindex(_EOT_LENGTHS_TAG) + 12
    tiler = data._tiff_image  # opentile's level: batched reads of the raw (spliced) tiles
    offsets: list[int] = []
    lengths: list[int] = []
    points = [(x, y) for y in range(tiled.height) for x in range(tiled.width)]
    batches = [points[start : start + BATCH] for start in range(0, count, BATCH)]
    out = DirectWriter(path)
    with ThreadPoolExecutor(1) as reader:
        out.write(head)
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
        out.write(_ITEM.pack(0xFFFE, 0xE000, 0))
        position = 0
        # The next batch is read while this one is written.
        pending = reader.submit(tiler.get_tiles, batches[0]) if batches else None
        for number in range(len(batches)):
            tiles = pending.result()  # type: ignore[union-attr]
            if number + 1 < len(batches):
                pending = reader.submit(tiler.get_tiles, batches[number + 1])
            chunk = []
            for tile in tiles:
                length = len(tile)
                padded = length + (length & 1)
                offsets.append(position)
                lengths.append(padded)  # the Item Length, as PS3.5 A.4 and pydicom
                chunk.append(_ITEM.pack(0xFFFE, 0xE000, padded))
                chunk.append(tile)
                if length & 1:
                    chunk.append(b"\x00")
                position += 8 + padded
            out.write(b"".join(chunk))
        out.write(_ITEM.pack(0xFFFE, 0xE0DD, 0))
    out.close(fsync=False)
    with open(path, "r+b") as patch:
        patch.seek(eot_at)
        patch.write(struct.pack(f"<{count}Q", *offsets))
        patch.seek(lengths_at)
        patch.write(struct.pack(f"<{count}Q", *lengths))
