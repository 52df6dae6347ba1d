"""Process-wide corrections of the converter's libraries, applied once at start-up of a
process that converts (``apply``; `wsiarchive import/convert/watch` call it, and so does
``convert``). Each names the upstream behaviour it corrects:

1. wsidicomizer, on import, sets pydicom's validation to RAISE and turns on pydicom's
   "future behavior" for the whole process (which breaks Dataset.pixel_array in pydicom 3.0):
   both are put back; conversions set the modes they need for their own duration
   (``conversion_validation``).
2. wsidicom's WsiDataset.create_instance_dataset / update_for_transcoding leave out what
   PS3.3 C.8.12.4 requires of MONOCHROME2 images: added (converter.conformance.fix).
3. wsidicom's WsiDataset.as_tiled_full keeps ORIGINAL\\PRIMARY\\VOLUME\\NONE on levels it made
   by downsampling: they become DERIVED\\PRIMARY\\VOLUME\\RESAMPLED (C.8.12.4.1.1).
4. wsidicom's EotWriter.write counts the 8-byte item header in every Extended Offset Table
   length but the last: each length becomes the frame's Item Length (PS3.5 A.4).
5. wsidicom's EncoderPool._downsample_block uses Pillow's reduce(), which has no 16-bit grey
   mode: 16-bit tiles are halved with numpy; half-size edge tiles are padded to full size.
6. opentile's HistechTiffImage.pyramid_index is 0 for every page of a 3DHISTECH TIFF, though
   it computes the page's index from its scale: every level of a multi-level file claimed to
   be the base. The computed index is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from converter.conformance import fix, pad, reduce

_applied = False


def apply() -> None:
    """Apply every correction, once per process."""
    global _applied
    if _applied:
        return
    _restore_pydicom_after_wsidicomizer()
    _fix_wsidicom_datasets()
    _fix_wsidicom_offset_table()
    _fix_wsidicom_downsampling()
    _fix_opentile_histech_levels()
    _applied = True


def _restore_pydicom_after_wsidicomizer() -> None:
    from pydicom import config

    future = config._use_future
    saved = (config.settings.reading_validation_mode, config.settings.writing_validation_mode)
    import wsidicomizer.dicomizer_source  # noqa: F401 (the import that changes the modes)

    if not future:
        config.future_behavior(False)
    config.settings.reading_validation_mode, config.settings.writing_validation_mode = saved


@contextmanager
def conversion_validation() -> Iterator[None]:
    """pydicom's validation as wsidicom's writing needs it (RAISE on writing), for the
    duration of a conversion; the rest of the archive reads real-world files that break VR
    rules (a 66-character UID), so the process-wide modes are put back afterwards."""
    from pydicom import config

    saved = (config.settings.reading_validation_mode, config.settings.writing_validation_mode)
    try:
        config.settings.reading_validation_mode = config.WARN
        config.settings.writing_validation_mode = config.RAISE
        yield
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = saved


def _fix_wsidicom_datasets() -> None:
    from wsidicom.instance.dataset import WsiDataset

    create = WsiDataset.create_instance_dataset.__func__
    update = WsiDataset.update_for_transcoding
    as_tiled_full = WsiDataset.as_tiled_full

    def create_instance_dataset(cls: type, *args: Any, **kwargs: Any) -> Any:
        return fix(create(cls, *args, **kwargs))

    def update_for_transcoding(self: Any, *args: Any, **kwargs: Any) -> None:
        update(self, *args, **kwargs)
        fix(self)

    def as_tiled_full_resampled(self: Any, *args: Any, **kwargs: Any) -> Any:
        dataset = as_tiled_full(self, *args, **kwargs)
        scale = kwargs.get("scale", args[3] if len(args) > 3 else 1)
        image_type = list(dataset.get("ImageType", []))
        if scale > 1 and len(image_type) == 4 and image_type[2] == "VOLUME":
            dataset.ImageType = ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
        return dataset

    WsiDataset.create_instance_dataset = classmethod(create_instance_dataset)
    WsiDataset.update_for_transcoding = update_for_transcoding
    WsiDataset.as_tiled_full = as_tiled_full_resampled


def _fix_wsidicom_offset_table() -> None:
    from wsidicom.file.io.frame_index.offset_table_writer import EotWriter
    from wsidicom.tags import ExtendedOffsetTableLengthsTag, ExtendedOffsetTableTag

    def write(self: Any, pixel_data_start: int, frame_positions: Any, last_frame_end: int) -> None:
        self._file.seek(self._table_start)
        self._file.check_tag_and_length(
            ExtendedOffsetTableTag, 8 * len(frame_positions), True, True
        )
        for position in frame_positions:
            self._file.write_unsigned_long_long(position - pixel_data_start)
        self._file.check_tag_and_length(
            ExtendedOffsetTableLengthsTag, 8 * len(frame_positions), True, True
        )
        ends = [*frame_positions[1:], last_frame_end]
        for start, end in zip(frame_positions, ends, strict=True):
            self._file.write_unsigned_long_long(end - start - 8)

    EotWriter.write = write


def _fix_wsidicom_downsampling() -> None:
    from wsidicom.writing.encoder_pool import EncoderPool

    def downsample_block(self: Any, tiles: Any) -> Any:
        if self._downsampler.commutes_with_stitch:
            tile = self._stitcher.stitch_grid([[reduce(t) for t in row] for row in tiles])
        else:
            composite = self._stitcher.stitch_grid(tiles)
            tile = self._downsampler.downsample(composite, self._tile_size)
        return pad(tile, self._tile_size)

    EncoderPool._downsample_block = downsample_block


def _fix_opentile_histech_levels() -> None:
    from opentile.formats.histech.histech_tiff_image import HistechTiffImage

    HistechTiffImage.pyramid_index = property(lambda self: self._pyramid_index)
