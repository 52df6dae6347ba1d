"""An instance's image as tiles on its Total Pixel Matrix (PS3.3 C.8.12.4.1), the pyramid
levels of a whole slide, and which image may stand for a series in a thumbnail."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from storage.index import StoredRecord
from storage.pixels import ImageInfo, Pixels

FrameSource = Callable[[int], Pixels]  # 1-based frame number -> decoded pixels


def _values(document: dict, tag: str) -> list:
    return list(document.get(tag, {}).get("Value") or [])


def _first(document: dict, tag: str, default: object = None) -> object:
    values = _values(document, tag)
    return values[0] if values else default


@dataclass(frozen=True)
class TiledImage:
    """Where each frame of an instance sits in the image it is part of."""

    record: StoredRecord
    info: ImageInfo
    width: int
    height: int
    tiles: dict[int, tuple[int, int]]  # frame number -> (x, y) of its top-left pixel
    image_type: tuple[str, ...] = ()
    pyramid: str | None = None
    optical_path: str | None = None
    patient_data: bool = False  # burned-in annotation or a specimen label in the image

    @classmethod
    def from_document(cls, record: StoredRecord, document: dict, info: ImageInfo) -> TiledImage:
        image_type = tuple(str(value).upper() for value in _values(document, "00080008"))
        patient_data = (
            str(_first(document, "00280301", "NO")).upper() == "YES"
            or str(_first(document, "00480010", "NO")).upper() == "YES"
            or "LABEL" in image_type[2:3]
        )
        common = {
            "record": record,
            "info": info,
            "image_type": image_type,
            "pyramid": _first(document, "00080019"),
            "optical_path": _first(_first(document, "00480105", {}) or {}, "00480106"),
            "patient_data": patient_data,
        }
        frames = max(record.number_of_frames, 1)
        width = int(_first(document, "00480006", 0) or 0)  # type: ignore[call-overload]
        height = int(_first(document, "00480007", 0) or 0)  # type: ignore[call-overload]
        if width and height:
            positions = _sparse_positions(document)
            if positions and str(_first(document, "00209311", "")) != "TILED_FULL":
                return cls(width=width, height=height, tiles=positions, **common)
            across = math.ceil(width / info.columns)
            down = math.ceil(height / info.rows)
            if across * down <= frames:
                # TILED_FULL (C.7.6.17.3): row-major tiles of the first focal plane and
                # optical path come first.
                tiles = {
                    row * across + column + 1: (column * info.columns, row * info.rows)
                    for row in range(down)
                    for column in range(across)
                }
                return cls(width=width, height=height, tiles=tiles, **common)
        return cls(width=info.columns, height=info.rows, tiles={1: (0, 0)}, **common)

    @property
    def flavor(self) -> str:
        """VOLUME, LABEL, OVERVIEW, THUMBNAIL (PS3.3 C.8.12.4.1.1) or '' for other images."""
        return self.image_type[2] if len(self.image_type) > 2 else ""

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


def same_pyramid(target: TiledImage, candidate: TiledImage) -> bool:
    """Whether *candidate* is a level of the same multi-resolution image as *target*."""
    if candidate.flavor not in ("VOLUME", "THUMBNAIL") or target.flavor not in (
        "VOLUME",
        "THUMBNAIL",
    ):
        return candidate.record.blob_key == target.record.blob_key
    if target.pyramid and candidate.pyramid and target.pyramid != candidate.pyramid:
        return False
    if target.optical_path != candidate.optical_path:
        return False
    # The same aspect ratio (within a tile's rounding at either level).
    return abs(candidate.width / candidate.height - target.width / target.height) < 0.02


def best_level(
    target: TiledImage, levels: Sequence[TiledImage], region_width: int, out_width: int
) -> TiledImage:
    """The level of *target*'s pyramid to read a region *region_width* pixels wide (at
    *target*'s resolution) from, for an output *out_width* pixels wide: the smallest level
    that still has at least *out_width* pixels across the region (so the base level is only
    decoded when the output needs its detail), else the finest level there is."""
    candidates = [level for level in levels if same_pyramid(target, level)]
    if not any(level.record.blob_key == target.record.blob_key for level in candidates):
        candidates.append(target)
    enough = [
        level
        for level in candidates
        if region_width * level.width / target.width >= out_width - 0.5
    ]
    if enough:
        return min(enough, key=lambda level: level.width)
    return max(candidates, key=lambda level: level.width)


def thumbnail_candidate(images: Sequence[TiledImage]) -> TiledImage | None:
    """The image that may stand for a series or study in a thumbnail (§10.4.1.1.4: no patient
    identifying information): a THUMBNAIL, else the smallest VOLUME level, else an overview
    or other image; never a label or an image with burned-in annotation."""
    safe = [image for image in images if not image.patient_data]
    for flavor in ("THUMBNAIL", "VOLUME", "OVERVIEW", ""):
        found = [image for image in safe if image.flavor == flavor]
        if found:
            return min(found, key=lambda image: image.width * image.height)
    return min(safe, key=lambda image: image.width * image.height) if safe else None


def _sparse_positions(document: dict) -> dict[int, tuple[int, int]]:
    """Frame positions of TILED_SPARSE images from Plane Position (Slide) (C.8.12.6.1)."""
    positions: dict[int, tuple[int, int]] = {}
    for number, item in enumerate(_values(document, "52009230"), start=1):
        for plane in _values(item or {}, "0048021A"):
            column = _first(plane or {}, "0048021E")
            row = _first(plane or {}, "0048021F")
            if column is not None and row is not None:
                positions[number] = (int(column) - 1, int(row) - 1)  # type: ignore[call-overload]
    return positions
