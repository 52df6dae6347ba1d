"""An instance's image as tiles on its Total Pixel Matrix (PS3.3 C.8.12.4.1), the pyramid
levels of a whole slide, and which image may stand for a series in a thumbnail."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

import numpy as np

from storage.dicom.document import JsonDataset
from storage.imaging.codecs import ImageInfo, Pixels

FrameSource = Callable[[int], Pixels]  # 1-based frame number -> decoded pixels
S = TypeVar("S")  # what the image was read from (the core's stored record)


class Flavor(StrEnum):
    """The third value of Image Type of a WSI (PS3.3 C.8.12.4.1.1); OTHER for the rest."""

    VOLUME = "VOLUME"
    LABEL = "LABEL"
    OVERVIEW = "OVERVIEW"
    THUMBNAIL = "THUMBNAIL"
    OTHER = ""


@dataclass(frozen=True)
class TiledImage(Generic[S]):
    """Where each frame of an instance sits in the image it is part of.

    *source* is what the frames are read from and *key* names it (two images with one key
    are the same image); *frames* is how many frames it has."""

    source: S
    key: str
    frames: int
    info: ImageInfo
    width: int
    height: int
    tiles: dict[int, tuple[int, int]]  # frame number -> (x, y) of its top-left pixel
    image_type: tuple[str, ...] = ()
    pyramid: str | None = None
    optical_path: str | None = None
    patient_data: bool = False  # burned-in annotation or a specimen label in the image

    @classmethod
    def from_document(
        cls, source: S, key: str, frames: int, document: JsonDataset, info: ImageInfo
    ) -> TiledImage[S]:
        image_type = tuple(str(value).upper() for value in document.values("00080008"))
        patient_data = (
            document.text("00280301", "NO").upper() == "YES"
            or document.text("00480010", "NO").upper() == "YES"
            or "LABEL" in image_type[2:3]
        )
        optical_paths = document.items("00480105")
        common = {
            "image_type": image_type,
            "pyramid": document.first("00080019"),
            "optical_path": optical_paths[0].first("00480106") if optical_paths else None,
            "patient_data": patient_data,
        }
        width = document.integer("00480006", 0)
        height = document.integer("00480007", 0)
        if width and height:
            positions = _sparse_positions(document)
            if positions and document.text("00209311") != "TILED_FULL":
                return cls(source, key, frames, info, width, height, positions, **common)
            across = math.ceil(width / info.columns)
            down = math.ceil(height / info.rows)
            if across * down <= max(frames, 1):
                # TILED_FULL (C.7.6.17.3): row-major tiles of the first focal plane and
                # optical path come first.
                tiles = {
                    row * across + column + 1: (column * info.columns, row * info.rows)
                    for row in range(down)
                    for column in range(across)
                }
                return cls(source, key, frames, info, width, height, tiles, **common)
        return cls(source, key, frames, info, info.columns, info.rows, {1: (0, 0)}, **common)

    def frame(self, number: int) -> TiledImage[S]:
        """The image of one of its frames alone."""
        return TiledImage(
            self.source, self.key, self.frames, self.info, self.info.columns, self.info.rows,
            {number: (0, 0)},
        )  # fmt: skip

    @property
    def flavor(self) -> Flavor:
        """VOLUME, LABEL, OVERVIEW, THUMBNAIL (PS3.3 C.8.12.4.1.1) or OTHER."""
        value = self.image_type[2] if len(self.image_type) > 2 else ""
        return Flavor(value) if value in set(Flavor) else Flavor.OTHER

    def read(self, x: int, y: int, width: int, height: int, frames: FrameSource) -> Pixels:
        """The pixels of a region, pasted together from the tiles that overlap it (only those
        are decoded). Where no tile lies the region is white (brightfield background) for
        colour images and black for grey ones."""
        info = self.info
        shape: tuple[int, ...] = (height, width) + ((info.samples,) if info.samples > 1 else ())
        canvas: np.ndarray | None = None
        photometric = info.photometric
        for number, (tile_x, tile_y) in self.tiles.items():
            left, top = max(x, tile_x), max(y, tile_y)
            right = min(x + width, tile_x + info.columns)
            bottom = min(y + height, tile_y + info.rows)
            if left >= right or top >= bottom:
                continue
            pixels = frames(number)
            if canvas is None:
                canvas = _background(shape, pixels.array.dtype, info.samples)
                photometric = pixels.photometric
            canvas[top - y : bottom - y, left - x : right - x] = pixels.array[
                top - tile_y : bottom - tile_y, left - tile_x : right - tile_x
            ]
        if canvas is None:
            canvas = _background(shape, info.dtype, info.samples)
        return Pixels(canvas, photometric)


def _background(shape: tuple[int, ...], dtype: np.dtype, samples: int) -> np.ndarray:
    """White for colour (brightfield glass), black for grey (fluorescence)."""
    return np.full(shape, np.iinfo(dtype).max if samples > 1 else 0, dtype=dtype)


_LEVELS = (Flavor.VOLUME, Flavor.THUMBNAIL)


def same_pyramid(target: TiledImage[S], candidate: TiledImage[S]) -> bool:
    """Whether *candidate* is a level of the same multi-resolution image as *target*."""
    if candidate.flavor not in _LEVELS or target.flavor not in _LEVELS:
        return candidate.key == target.key
    if target.pyramid and candidate.pyramid and target.pyramid != candidate.pyramid:
        return False
    if target.optical_path != candidate.optical_path:
        return False
    # The same aspect ratio (within a tile's rounding at either level).
    return abs(candidate.width / candidate.height - target.width / target.height) < 0.02


def best_level(
    target: TiledImage[S], levels: Sequence[TiledImage[S]], region_width: int, out_width: int
) -> TiledImage[S]:
    """The level of *target*'s pyramid to read a region *region_width* pixels wide (at
    *target*'s resolution) from, for an output *out_width* pixels wide: the smallest level
    that still has at least *out_width* pixels across the region (so the base level is only
    decoded when the output needs its detail), else the finest level there is."""
    candidates = [level for level in levels if same_pyramid(target, level)]
    if not any(level.key == target.key for level in candidates):
        candidates.append(target)
    enough = [
        level
        for level in candidates
        if region_width * level.width / target.width >= out_width - 0.5
    ]
    if enough:
        return min(enough, key=lambda level: level.width)
    return max(candidates, key=lambda level: level.width)


def thumbnail_candidate(images: Sequence[TiledImage[S]]) -> TiledImage[S] | None:
    """The image that may stand for a series or study in a thumbnail (§10.4.1.1.4: no patient
    identifying information): a THUMBNAIL, else the smallest VOLUME level, else an overview
    or other image; never a label or an image with burned-in annotation."""
    safe = [image for image in images if not image.patient_data]
    for flavor in (Flavor.THUMBNAIL, Flavor.VOLUME, Flavor.OVERVIEW, Flavor.OTHER):
        found = [image for image in safe if image.flavor == flavor]
        if found:
            return min(found, key=lambda image: image.width * image.height)
    return min(safe, key=lambda image: image.width * image.height) if safe else None


def _sparse_positions(document: JsonDataset) -> dict[int, tuple[int, int]]:
    """Frame positions of TILED_SPARSE images from Plane Position (Slide) (C.8.12.6.1)."""
    positions: dict[int, tuple[int, int]] = {}
    for number, item in enumerate(document.items("52009230"), start=1):
        for plane in item.items("0048021A"):
            column = plane.first("0048021E")
            row = plane.first("0048021F")
            if column is not None and row is not None:
                positions[number] = (int(column) - 1, int(row) - 1)
    return positions
