"""The fast path for slides whose tiles are all copied as they are: headers from wsidicom,
pixel data streamed tile by tile from opentile straight into the files, and missing pyramid
levels made from the same stream (converter.pyramid).

wsidicom's writer moves each tile through producer, encoder and writer threads and a tile
cache; one loop over the source's tile rows does the same work several times faster. Used
only when every image of the slide qualifies (see ``eligible``); otherwise the converter
falls back to wsidicom's writer.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import JPEG2000, UID, JPEG2000Lossless, JPEGBaseline8Bit, generate_uid

from converter import pyramid
from storage.blobs import DirectWriter

COPYABLE = {JPEGBaseline8Bit, JPEG2000, JPEG2000Lossless}
_ITEM = struct.Struct("<HHI")
_EOT_TAG = b"\xe0\x7f\x01\x00OV\x00\x00"
_EOT_LENGTHS_TAG = b"\xe0\x7f\x02\x00OV\x00\x00"
_RATIO_TAG = b"\x28\x00\x12\x21DS"
_RATIO_PLACEHOLDER = b" " * 16  # wsidicom's placeholder for the ratio of a re-encoded level
BATCH = 256  # tiles read at once
AHEAD_TILES = 1024  # tiles decoded ahead of the row being placed (bounds memory)
CHUNK = 8  # tiles decoded by one task


def _others(wsi: Any, options: Any) -> list[Any]:
    """Label, overview and thumbnail images to write, as wsidicom's writer orders them."""
    groups = []
    if options.include_thumbnail:
        groups += list(getattr(wsi.pyramid, "thumbnails", None) or [])
    if options.include_overview:
        groups += list(wsi.overviews or [])
    if options.include_label:
        groups += list(wsi.labels or [])
    return groups


def eligible(wsi: Any, options: Any) -> bool:
    """True when every image is one opentile instance whose tiles are copied unchanged, and
    every level to generate can be made from JPEG tiles (converter.pyramid)."""
    from wsidicomizer.sources import OpenTileSource

    if not isinstance(getattr(wsi, "_source", None), OpenTileSource):
        return False
    others = _others(wsi, options)
    for group in [*wsi.levels, *others]:
        instances = list(group.instances.values())
        if len(instances) != 1:
            return False
        data = instances[0].image_data
        if len(data.focal_planes) != 1 or len(data.optical_paths) != 1:
            return False
        if group in others:
            continue  # a label or overview that must be re-encoded goes through wsidicom
        if getattr(data, "needs_transcoding", True) or data.transfer_syntax not in COPYABLE:
            return False
    planned = pyramid.plan(wsi.pyramid, options.add_missing_levels)
    return pyramid.can_generate(planned)


class LevelFile:
    """One TILED_FULL instance being written: the header with placeholders for the Extended
    Offset Table, the frames in order, then the table (and a re-encoded level's compression
    ratio) written into the placeholders."""

    def __init__(self, path: Path, dataset: Any, transfer_syntax: str) -> None:
        self.path = path
        self.count = int(dataset.NumberOfFrames)
        self.uncompressed = (
            self.count * int(dataset.Rows) * int(dataset.Columns) * int(dataset.SamplesPerPixel)
        )
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = dataset.SOPClassUID
        meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        meta.TransferSyntaxUID = UID(transfer_syntax)
        dataset.file_meta = meta
        dataset.ExtendedOffsetTable = bytes(8 * self.count)
        dataset.ExtendedOffsetTableLengths = bytes(8 * self.count)
        header = io.BytesIO()
        dcmwrite(header, dataset, enforce_file_format=True)
        head = header.getvalue()
        self._eot_at = head.rindex(_EOT_TAG) + 12
        self._lengths_at = head.rindex(_EOT_LENGTHS_TAG) + 12
        ratio = head.find(_RATIO_TAG + b"\x10\x00" + _RATIO_PLACEHOLDER)
        self._ratio_at = ratio + 8 if ratio >= 0 else None
        self.offsets: list[int] = []
        self.lengths: list[int] = []
        self._position = 0
        self._out = DirectWriter(path, 8 << 20 if self.count > 64 else 1 << 20)
        self._out.write(head)
        self._out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
        self._out.write(_ITEM.pack(0xFFFE, 0xE000, 0))  # an empty Basic Offset Table

    def add(self, tiles: list[bytes]) -> None:
        chunk = []
        for tile in tiles:
            length = len(tile)
            padded = length + (length & 1)
            self.offsets.append(self._position)
            self.lengths.append(padded)  # the Item Length, as PS3.5 A.4 and pydicom
            chunk.append(_ITEM.pack(0xFFFE, 0xE000, padded))
            chunk.append(tile)
            if length & 1:
                chunk.append(b"\x00")
            self._position += 8 + padded
        self._out.write(b"".join(chunk))

    def close(self) -> Path:
        if len(self.offsets) != self.count:
            raise RuntimeError(f"{self.path.name}: {len(self.offsets)} of {self.count} frames")
        self._out.write(_ITEM.pack(0xFFFE, 0xE0DD, 0))
        self._out.close(fsync=False)
        with open(self.path, "r+b") as patch:
            patch.seek(self._eot_at)
            patch.write(struct.pack(f"<{self.count}Q", *self.offsets))
            patch.seek(self._lengths_at)
            patch.write(struct.pack(f"<{self.count}Q", *self.lengths))
            if self._ratio_at is not None:
                # As wsidicom's writer: uncompressed size over the frames' bytes.
                ratio = f"{round(self.uncompressed / sum(self.lengths), 2)}".encode()
                patch.seek(self._ratio_at)
                patch.write(ratio.ljust(16)[:16])
        return self.path

    def abandon(self) -> None:
        with contextlib.suppress(OSError):
            self._out.close(fsync=False)


def _dataset(group: Any, scale: int, number: int, encoder: Any) -> Any:
    """The instance's header, as wsidicom's writer builds it (PyramidFileWriter)."""
    data = group.default_instance.image_data
    dataset = group.default_instance.dataset.as_tiled_full(
        data.focal_planes, data.optical_paths, data.tiled_size, scale
    )
    if scale > 1:
        dataset.update_for_transcoding(encoder, scale)
    dataset.SOPInstanceUID = generate_uid()
    dataset.InstanceNumber = number
    now = datetime.now()  # as wsidicom's writer stamps the content
    dataset.ContentDate = now.strftime("%Y%m%d")
    dataset.ContentTime = now.strftime("%H%M%S.%f")
    return dataset


def write(wsi: Any, work: Path, options: Any, name: str = "") -> list[Path]:
    """Write every image of *wsi* into *work*; returns the files."""
    from wsidicom.codec import Encoder, JpegSettings, Subsampling

    settings = JpegSettings(quality=options.jpeg_quality, subsampling=Subsampling.R422)
    encoder = Encoder.create_for_settings(settings)
    codec = pyramid.JpegCodec(options.jpeg_quality)
    planned = pyramid.plan(wsi.pyramid, options.add_missing_levels)
    files: list[Path] = []
    number = 1
    copied = [level.group for level in planned if not level.generated]
    copied += [group for group in _others(wsi, options) if _copyable(group)]
    progress = _Progress(name, copied, options.tile_progress)
    with ThreadPoolExecutor(max(options.workers, 1)) as pool:
        # Each present level with the generated levels above it, up to the next present one.
        chains: list[list[pyramid.PlannedLevel]] = []
        for level in planned:
            if level.generated and chains:
                chains[-1].append(level)
            else:
                chains.append([level])
        for chain in chains:
            opened = []
            try:
                for level in chain:
                    dataset = _dataset(level.group, level.scale, number, encoder)
                    syntax = JPEGBaseline8Bit if level.generated else None
                    syntax = syntax or level.group.default_instance.image_data.transfer_syntax
                    opened.append(
                        LevelFile(work / f"{dataset.SOPInstanceUID}.dcm", dataset, syntax)
                    )
                    number += 1
                _stream_chain(chain, opened, codec, pool, progress)
                files += [level_file.close() for level_file in opened]
            except BaseException:
                for level_file in opened:
                    level_file.abandon()
                raise
        for group in _others(wsi, options):
            if not _copyable(group):
                files += _transcode(group, work, encoder, number)
                number += 1
                continue
            level_file = LevelFile(
                work / f"{generate_uid()}.dcm",
                _dataset(group, 1, number, encoder),
                group.default_instance.image_data.transfer_syntax,
            )
            number += 1
            try:
                _stream_chain(
                    [pyramid.PlannedLevel(0, group, 1)], [level_file], codec, pool, progress
                )
            except BaseException:
                level_file.abandon()
                raise
            files.append(level_file.close())
    return files


def _copyable(group: Any) -> bool:
    data = group.default_instance.image_data
    return not getattr(data, "needs_transcoding", True) and data.transfer_syntax in COPYABLE


def _transcode(group: Any, work: Path, encoder: Any, number: int) -> list[Path]:
    """A small image whose tiles DICOM cannot carry (an SVS label in LZW) goes through
    wsidicom's writer, re-encoded as the slide's other generated images are."""
    from wsidicom.file.file_writer import GroupFileWriter
    from wsidicom.file.io.frame_index.offset_table_type import OffsetTableType
    from wsidicom.metadata.uid_generator import CallableUidGenerator

    writer = GroupFileWriter(
        group=group,
        output_path=work,
        uid_generator=CallableUidGenerator(generate_uid),
        transcoder=encoder,
        force_transcoding=False,
        offset_table=OffsetTableType.EXTENDED,
        instance_number_start=number,
    )
    return [Path(str(path)) for path in writer.write()]


class _Progress:
    """Counts the source tiles copied, for a progress bar."""

    def __init__(self, name: str, groups: list[Any], report: Any) -> None:
        self.name, self.report, self.done = name, report, 0
        self.total = sum(
            g.default_instance.image_data.tiled_size.width
            * g.default_instance.image_data.tiled_size.height
            for g in groups
        )

    def add(self, count: int) -> None:
        self.done += count
        if self.report is not None:
            self.report(self.name, self.done, self.total)


def _stream_chain(
    chain: Any, files: list[LevelFile], codec: Any, pool: Executor, progress: _Progress
) -> None:
    """Copy the tiles of the present level *chain[0]* into its file, and build the generated
    levels *chain[1:]* from them on the way."""
    data = chain[0].group.default_instance.image_data
    tiled = data.tiled_size
    tile = data.tile_size
    reduction = None
    for level, level_file in reversed(list(zip(chain[1:], files[1:], strict=True))):
        image = level.group.default_instance.image_data
        reduction = pyramid.Reduction(
            size=(
                -(-level.group.size.width // level.scale),
                -(-level.group.size.height // level.scale),
            ),
            tile=(tile.width, tile.height),
            tiled=(
                -(-image.tiled_size.width // level.scale),
                -(-image.tiled_size.height // level.scale),
            ),
            emit=level_file.add,
            codec=codec,
            pool=pool,
            above=reduction,
        )
    tiler = data._tiff_image  # opentile's level: batched reads of the raw (spliced) tiles
    rows_per_batch = max(1, BATCH // tiled.width)
    batches = [
        [
            (x, y)
            for y in range(top, min(top + rows_per_batch, tiled.height))
            for x in range(tiled.width)
        ]
        for top in range(0, tiled.height, rows_per_batch)
    ]
    half_width, half_height = tile.width // 2, tile.height // 2
    decoding: deque[list[Future]] = deque()  # tile rows being decoded, oldest first
    ahead = max(2, AHEAD_TILES // tiled.width)

    def place_oldest() -> None:
        assert reduction is not None
        x = 0
        for future in decoding.popleft():
            for half in future.result():
                reduction.place(x * half_width, half)
                x += 1
        reduction.advance(half_height)

    with ThreadPoolExecutor(1) as reader:
        # The next batch is read while this one is written; the decoding of a few rows runs
        # ahead of their placing, so that the pool never waits for this thread.
        pending = reader.submit(_read, tiler, batches[0]) if batches else None
        for number in range(len(batches)):
            assert pending is not None
            tiles = pending.result()
            if number + 1 < len(batches):
                pending = reader.submit(_read, tiler, batches[number + 1])
            files[0].add(tiles)
            progress.add(len(tiles))
            if reduction is None:
                continue
            for start in range(0, len(tiles), tiled.width):
                row = tiles[start : start + tiled.width]
                decoding.append(
                    [
                        pool.submit(_decode_halves, codec, row[at : at + CHUNK])
                        for at in range(0, len(row), CHUNK)
                    ]
                )
                while len(decoding) > ahead:
                    place_oldest()
    while decoding:
        place_oldest()
    if reduction is not None:
        reduction.finish()


def _decode_halves(codec: Any, tiles: list[bytes]) -> list[Any]:
    return [codec.decode_half(tile) for tile in tiles]


def _read(tiler: Any, points: list[tuple[int, int]]) -> list[bytes]:
    """opentile's batched read; some of its tilers (NDPI) return a generator."""
    return list(tiler.get_tiles(points))
