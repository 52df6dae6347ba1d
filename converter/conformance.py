"""Fixes to wsidicom's writing: instance datasets that meet the WSI IOD as dciodvfy's
WG26SP2025 profile checks it, and pyramid levels built from 16-bit tiles."""

from __future__ import annotations

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from wsidicom.instance.dataset import WsiDataset

_installed = False


def fix(dataset: Dataset) -> Dataset:
    """PS3.3 C.8.12.4 (Whole Slide Microscopy Image Module): MONOCHROME2 needs Presentation
    LUT Shape and the Rescale attributes."""
    if dataset.get("PhotometricInterpretation") == "MONOCHROME2":
        dataset.PresentationLUTShape = "IDENTITY"
        dataset.RescaleSlope = 1
        dataset.RescaleIntercept = 0
    return dataset


def _reduce(tile: Image.Image) -> Image.Image:
    """2x2 mean of a tile; Pillow's reduce() has no 16-bit grey mode, so numpy does those."""
    if not tile.mode.startswith("I"):
        return tile.reduce(2)
    data = np.asarray(tile, dtype=np.uint32)
    height, width = data.shape[0] // 2 * 2, data.shape[1] // 2 * 2
    data = data[:height, :width]
    mean = (data[0::2, 0::2] + data[1::2, 0::2] + data[0::2, 1::2] + data[1::2, 1::2] + 2) // 4
    return Image.fromarray(mean.astype(np.uint16))


def _pad(tile: Image.Image, size) -> Image.Image:  # type: ignore[no-untyped-def]
    """A generated tile made from a single row or column of tiles comes out half size;
    every frame must be Rows x Columns, so it is padded (white for colour, black for grey)."""
    width, height = size.width, size.height
    if tile.size == (width, height):
        return tile
    fill = (255, 255, 255) if tile.mode == "RGB" else 0
    padded = Image.new(tile.mode, (width, height), fill)
    padded.paste(tile, (0, 0))
    return padded


def _write_eot(self, pixel_data_start: int, frame_positions, last_frame_end: int) -> None:  # type: ignore[no-untyped-def]
    """wsidicom's EotWriter.write with each length the frame's Item Length (PS3.5 A.4, as
    pydicom's encapsulate_extended): wsidicom counted the 8-byte item header in all lengths
    but the last."""
    from wsidicom.tags import ExtendedOffsetTableLengthsTag, ExtendedOffsetTableTag

    self._file.seek(self._table_start)
    self._file.check_tag_and_length(ExtendedOffsetTableTag, 8 * len(frame_positions), True, True)
    for position in frame_positions:
        self._file.write_unsigned_long_long(position - pixel_data_start)
    self._file.check_tag_and_length(
        ExtendedOffsetTableLengthsTag, 8 * len(frame_positions), True, True
    )
    ends = [*frame_positions[1:], last_frame_end]
    for start, end in zip(frame_positions, ends, strict=True):
        self._file.write_unsigned_long_long(end - start - 8)


def install() -> None:
    """Wrap wsidicom's dataset builders with :func:`fix`, and let its pyramid builder halve
    16-bit tiles (once per process)."""
    global _installed
    if _installed:
        return
    from wsidicom.file.io.frame_index.offset_table_writer import EotWriter
    from wsidicom.writing.encoder_pool import EncoderPool

    def _downsample_block(self, tiles):  # type: ignore[no-untyped-def]
        if self._downsampler.commutes_with_stitch:
            tile = self._stitcher.stitch_grid([[_reduce(t) for t in row] for row in tiles])
        else:
            composite = self._stitcher.stitch_grid(tiles)
            tile = self._downsampler.downsample(composite, self._tile_size)
        return _pad(tile, self._tile_size)

    EncoderPool._downsample_block = _downsample_block  # type: ignore[method-assign]
    create = WsiDataset.create_instance_dataset.__func__  # type: ignore[attr-defined]
    update = WsiDataset.update_for_transcoding

    def create_instance_dataset(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        return fix(create(cls, *args, **kwargs))

    def update_for_transcoding(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        update(self, *args, **kwargs)
        fix(self)

    as_tiled_full = WsiDataset.as_tiled_full

    def as_tiled_full_resampled(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        # A level made by downsampling is DERIVED\PRIMARY\VOLUME\RESAMPLED (PS3.3
        # C.8.12.4.1.1); wsidicom keeps the base level's ORIGINAL...NONE.
        dataset = as_tiled_full(self, *args, **kwargs)
        scale = kwargs.get("scale", args[3] if len(args) > 3 else 1)
        image_type = list(dataset.get("ImageType", []))
        if scale > 1 and len(image_type) == 4 and image_type[2] == "VOLUME":
            dataset.ImageType = ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
        return dataset

    WsiDataset.as_tiled_full = as_tiled_full_resampled  # type: ignore[method-assign]
    EotWriter.write = _write_eot  # type: ignore[method-assign]
    WsiDataset.create_instance_dataset = classmethod(create_instance_dataset)  # type: ignore[method-assign,assignment]
    WsiDataset.update_for_transcoding = update_for_transcoding  # type: ignore[method-assign]
    _installed = True
