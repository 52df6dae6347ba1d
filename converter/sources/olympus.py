"""Olympus/Evident cellSens VSI slides: the image data of their ETS files, read with slideio.

A ``.vsi`` file is a small TIFF (an overview) and a tag tree that describes image stacks whose
tiles lie in ETS files in the ``_name_/stackN/`` folder beside it. slideio (BSD-3-Clause) reads
that tag tree and the ETS tile tables; this source takes the largest scene of the slide, its
channels as optical paths and its Z slices as focal planes (one pyramid per plane, as
:mod:`converter.sources.planes` does), and its zoom levels as pyramid levels. Tiles are decoded
once per ETS tile (kept in a bounded cache while the DICOM tiles cut from them are written) and
encoded with the converter's encoder: lossless JPEG 2000 for grey-level and 16-bit data, which
keeps every decoded value, the converter's JPEG settings for 8-bit RGB.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import Dataset
from wsidicom.codec import Encoder
from wsidicom.geometry import Point, Size, SizeMm
from wsidicom.metadata import Image as ImageMetadata
from wsidicom.metadata import (
    Objectives,
    OpticalPath,
    Pyramid,
    UidGenerator,
    WsiMetadata,
)
from wsidicomizer.image_data import BaseDicomizerImageData
from wsidicomizer.metadata import MetadataPostProcessor, WsiDicomizerMetadata

from converter.sources.planes import PlaneImageData, PlaneStackSource, stack_encoder
from storage.cache import Lru

# Decoded ETS tiles kept while DICOM tiles are cut from them: a row of 16-bit tiles of
# 1024 pixels is 2 MiB a tile, so this holds rows of most slides and every plane of small ones.
CACHE_BYTES = 256 << 20
DEFAULT_TILE = 512


class Stack:
    """The scene of a VSI slide that holds its image: size, levels, channels, planes."""

    def __init__(self, path: Path, fallback_mpp: float | None) -> None:
        import slideio

        slide = slideio.open_slide(str(path), "VSI")
        scenes = [slide.get_scene(index) for index in range(slide.num_scenes)]
        if not scenes:
            raise ValueError(f"the VSI holds no image stack (is its _{path.stem}_ folder there?)")
        self.scene: Any = max(scenes, key=lambda s: s.size[0] * s.size[1])
        scene = self.scene
        self.channels = int(scene.num_channels)
        types = {np.dtype(scene.get_channel_data_type(c)) for c in range(self.channels)}
        if len(types) != 1:
            raise ValueError(f"channels of different pixel types ({sorted(map(str, types))})")
        self.dtype = types.pop()
        if self.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"pixel data of type {self.dtype} cannot be stored in DICOM WSI")
        # Brightfield scans are three 8-bit samples of one colour image; anything else is
        # one grey-level image per channel (fluorescence).
        self.rgb = self.channels == 3 and self.dtype == np.uint8
        names = [scene.get_channel_name(c) or str(c) for c in range(self.channels)]
        self.channel_names = ["0"] if self.rgb else _unique(names)
        self.planes = max(1, int(scene.num_z_slices))
        self.z_spacing_um = float(scene.z_resolution or 0) * 1e6 or 1.0
        spacing_um = float(scene.resolution[0] or 0) * 1e6 or fallback_mpp
        if not spacing_um:
            raise ValueError(
                "the file gives no pixel size; give it with --mpp or the metadata key mpp"
            )
        self.spacing_um = spacing_um
        self.magnification = float(scene.magnification or 0) or None
        self.levels = [scene.get_zoom_level_info(i) for i in range(scene.num_zoom_levels)]
        self.cache: Lru[tuple[int, int, int, int, int], np.ndarray] = Lru(
            max_bytes=CACHE_BYTES, size=lambda a: int(a.nbytes)
        )

    @property
    def bits(self) -> int:
        return 16 if self.dtype == np.uint16 else 8

    def level_size(self, level: int) -> Size:
        size = self.levels[level].size
        return Size(int(size.width), int(size.height))

    def pyramid_index(self, level: int) -> int:
        """The level's power-of-two step below the base."""
        base = self.level_size(0).width
        return round(math.log2(base / max(1, self.level_size(level).width)))

    def focal_plane(self, index: int) -> float:
        """The position (µm) of focal plane *index*."""
        return round(index * self.z_spacing_um, 6)

    def region(self, level: int, plane: int, channel: int, x: int, y: int, size: Size) -> Any:
        """Pixels of the level from (x, y), *size* large, zero beyond the image."""
        block = self._ets_tile_size(level)
        out = np.zeros(
            (size.height, size.width, 3) if self.rgb else (size.height, size.width), self.dtype
        )
        level_size = self.level_size(level)
        right = min(x + size.width, level_size.width)
        bottom = min(y + size.height, level_size.height)
        for by in range(y // block.height, math.ceil(bottom / block.height)):
            for bx in range(x // block.width, math.ceil(right / block.width)):
                tile = self._block(level, plane, channel, bx, by)
                top_left = (bx * block.width, by * block.height)
                x0, y0 = max(x, top_left[0]), max(y, top_left[1])
                x1 = min(right, top_left[0] + tile.shape[1])
                y1 = min(bottom, top_left[1] + tile.shape[0])
                if x1 <= x0 or y1 <= y0:
                    continue
                out[y0 - y : y1 - y, x0 - x : x1 - x] = tile[
                    y0 - top_left[1] : y1 - top_left[1], x0 - top_left[0] : x1 - top_left[0]
                ]
        return out

    def _ets_tile_size(self, level: int) -> Size:
        tile = self.levels[level].tile_size
        width, height = int(tile.width), int(tile.height)
        return Size(width, height) if width > 0 and height > 0 else Size(1024, 1024)

    def _block(self, level: int, plane: int, channel: int, bx: int, by: int) -> np.ndarray:
        """One ETS tile of the level, decoded once while the cache holds it."""

        def read() -> np.ndarray:
            block = self._ets_tile_size(level)
            limit = self.level_size(level)
            width = min(block.width, limit.width - bx * block.width)
            height = min(block.height, limit.height - by * block.height)
            rect = (bx * block.width, by * block.height, width, height)
            channels = None if self.rgb else [channel]
            data = self.scene.read_block_from_level(
                level, rect, channel_indices=channels, slices=(plane, plane + 1)
            )
            return np.ascontiguousarray(data, dtype=self.dtype)

        return self.cache.get_or_make((level, plane, channel, bx, by), read)


def _unique(names: list[str]) -> list[str]:
    """Channel names made distinct (optical path identifiers must be)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if not count else f"{name} ({count + 1})")
    return out


class VsiImageData(PlaneImageData):
    """One zoom level at one focal plane of a :class:`Stack`, every channel an optical path."""

    def __init__(
        self, stack: Stack, level: int, plane: int, tile_size: int, encoder: Encoder
    ) -> None:
        size = stack.level_size(level)
        scale = stack.level_size(0).width / max(1, size.width)
        spacing_mm = stack.spacing_um * scale / 1000
        super().__init__(
            encoder,
            tile_size,
            size,
            SizeMm(spacing_mm, spacing_mm),
            stack.focal_plane(plane),
            stack.channel_names,
            stack.rgb,
            stack.dtype,
        )
        self._stack = stack
        self._level = level
        self._plane = plane

    thread_safe = property(lambda self: False)  # slideio's readers are not shared

    def _pixels(self, tile: Point, channel: int) -> np.ndarray:
        size = self._tile_size
        x, y = tile.x * size.width, tile.y * size.height
        return np.asarray(self._stack.region(self._level, self._plane, channel, x, y, size))


class VsiSource(PlaneStackSource):
    """DicomizerSource over a VSI slide's image stack (:class:`Stack`)."""

    def __init__(
        self,
        filepath: Path,
        encoder: Encoder,
        tile_size: int | None = None,
        metadata: WsiMetadata | None = None,
        default_metadata: WsiMetadata | None = None,
        include_confidential: bool = True,
        metadata_post_processor: Dataset | MetadataPostProcessor | None = None,
        uid_generator: UidGenerator | None = None,
        **_: object,
    ) -> None:
        self._stack = Stack(filepath, type(self).fallback_mpp)
        stack = self._stack
        super().__init__(
            filepath,
            stack_encoder(encoder, stack.rgb, stack.bits),
            tile_size or DEFAULT_TILE,
            metadata,
            default_metadata,
            include_confidential,
            metadata_post_processor,
            uid_generator,
        )
        spacing_mm = stack.spacing_um / 1000
        objective = Objectives(objective_power=stack.magnification) if stack.magnification else None
        self._base_metadata = WsiDicomizerMetadata(
            pyramid=Pyramid(
                image=ImageMetadata(pixel_spacing=SizeMm(spacing_mm, spacing_mm)),
                optical_paths=[
                    OpticalPath(identifier=name, description=name, objective=objective)
                    for name in stack.channel_names
                ],
            )
        )

    @staticmethod
    def is_supported(path: Path) -> bool:
        """A ``.vsi`` whose image stack slideio opens (not the overview alone)."""
        if path.suffix.lower() != ".vsi" or not (path.parent / f"_{path.stem}_").is_dir():
            return False
        try:
            import slideio

            return bool(slideio.open_slide(str(path), "VSI").num_scenes)
        except Exception:
            return False

    @property
    def focal_plane_count(self) -> int:
        return self._stack.planes

    @property
    def pyramid_levels(self) -> dict[tuple[int, float, str], int]:
        # One focal plane per conversion (``plane``): the WG-26 profile allows a single focal
        # plane in a TILED_FULL instance, so a Z stack becomes one pyramid per plane.
        plane = self._stack.focal_plane(type(self).plane)
        return {
            (self._stack.pyramid_index(level), plane, "0"): level
            for level in range(len(self._stack.levels))
        }

    def close(self) -> None:
        self._stack.cache.clear()

    def _create_level_image_data(self, level_index: int) -> BaseDicomizerImageData:
        return VsiImageData(
            self._stack, level_index, type(self).plane, self._tile_size, self._encoder
        )
