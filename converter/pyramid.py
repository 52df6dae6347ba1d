"""Missing pyramid levels made on the fast path: each one a 2x reduction of the level below,
built one tile row at a time while that level streams past (libjpeg-turbo decodes and
encodes; the tiles of a present level are decoded once, at half size, by its scaled IDCT).

Memory is one tile row per generated level, whatever the slide's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from pydicom.uid import JPEGBaseline8Bit

WHITE = 255  # what lies beyond the image in a generated tile (as wsidicom pads)


@dataclass
class PlannedLevel:
    """One level of the output pyramid: a present level (scale 1) or one generated from
    *group*, the closest present level below it, reduced *scale* times."""

    index: int
    group: Any  # a wsidicom Level
    scale: int

    @property
    def generated(self) -> bool:
        return self.scale > 1


def plan(pyramid: Any, add_missing_levels: bool) -> list[PlannedLevel]:
    """The levels wsidicom's writer would write, in order (PyramidFileWriter): every present
    level and, with *add_missing_levels*, every missing 2x step down to one tile."""
    present = pyramid.pyramid_indices
    highest = present[-1]
    if add_missing_levels:
        highest = max(highest, pyramid.lowest_single_tile_level)
        indices = range(highest + 1)
    else:
        indices = present
    planned = []
    for index in indices:
        if index in present:
            planned.append(PlannedLevel(index, pyramid.get(index), 1))
        else:
            group = pyramid.get_closest_by_level(index)
            planned.append(PlannedLevel(index, group, 2 ** (index - group.level)))
    return planned


def can_generate(planned: Sequence[PlannedLevel]) -> bool:
    """Levels are generated here only from 8-bit three-sample JPEG baseline tiles of even
    size, re-encoded as JPEG (the documented encoding for such slides)."""
    for level in planned:
        if not level.generated:
            continue
        data = level.group.default_instance.image_data
        tile = data.tile_size
        if (
            data.transfer_syntax != JPEGBaseline8Bit
            or data.samples_per_pixel != 3
            or data.bits != 8
            or tile.width % 2
            or tile.height % 2
        ):
            return False
    return True


class JpegCodec:
    """libjpeg-turbo through PyTurboJPEG: thread-safe (a handle per call) and free of the GIL
    while it works, so a pool of threads decodes and encodes tiles in parallel."""

    def __init__(self, quality: int) -> None:
        from turbojpeg import TJPF_RGB, TJSAMP_422, TurboJPEG

        self._jpeg = TurboJPEG()
        self._rgb = TJPF_RGB
        self._subsampling = TJSAMP_422  # 4:2:2, as documented (docs/converter.md)
        self._quality = quality

    def decode_half(self, tile: bytes) -> np.ndarray:
        """The tile at half its size, from the scaled IDCT (a low-pass reduction)."""
        decoded: np.ndarray = self._jpeg.decode(tile, pixel_format=self._rgb, scaling_factor=(1, 2))
        return decoded

    def encode(self, pixels: np.ndarray) -> bytes:
        return bytes(
            self._jpeg.encode(
                np.ascontiguousarray(pixels),
                quality=self._quality,
                pixel_format=self._rgb,
                jpeg_subsample=self._subsampling,
            )
        )


def halve(rows: np.ndarray) -> np.ndarray:
    """Rounded 2x2 mean of an RGB pixel band (Pillow's reduce: SIMD, free of the GIL)."""
    return np.asarray(Image.fromarray(rows).reduce(2))


class Reduction:
    """A generated level being built: a band one tile row high, filled with the half-size
    rows of the level below; each full band is cut into tiles, encoded and written, then
    halved into the next generated level."""

    def __init__(
        self,
        size: tuple[int, int],
        tile: tuple[int, int],
        tiled: tuple[int, int],
        emit: Callable[[list[bytes]], None],
        codec: JpegCodec,
        pool: Executor,
        above: Reduction | None,
    ) -> None:
        self.width, self.height = size
        self.tile_width, self.tile_height = tile
        self.columns, self.rows = tiled
        self.band = np.full((self.tile_height, self.columns * self.tile_width, 3), WHITE, np.uint8)
        self.filled = 0  # rows of the band filled so far
        self.row = 0  # the tile row the band holds
        self._emit, self._codec, self._pool, self._above = emit, codec, pool, above

    def place(self, column: int, pixels: np.ndarray) -> None:
        """Put *pixels* (at most the band's remaining height) at pixel *column*."""
        height, width = pixels.shape[:2]
        width = min(width, self.band.shape[1] - column)
        self.band[self.filled : self.filled + height, column : column + width] = pixels[:, :width]

    def advance(self, rows: int) -> None:
        """*rows* more rows are in place; a full band is written out."""
        self.filled += rows
        if self.filled >= self.tile_height:
            self._flush()

    def add_rows(self, pixels: np.ndarray) -> None:
        """A band of the level below, already halved."""
        self.place(0, pixels)
        self.advance(pixels.shape[0])

    def finish(self) -> None:
        """Write the last, partly filled band, then those of the levels above."""
        if self.filled and self.row < self.rows:
            self._flush()
        if self._above is not None:
            self._above.finish()

    def _flush(self) -> None:
        band = self.band
        band[:, self.width :] = WHITE  # beyond the image: white, not the source's padding
        inside = self.height - self.row * self.tile_height
        if inside < self.tile_height:
            band[max(inside, 0) :] = WHITE
        elif self.filled < self.tile_height:
            band[self.filled :] = WHITE
        w = self.tile_width
        tiles = [band[:, x * w : (x + 1) * w] for x in range(self.columns)]
        self._emit(list(self._pool.map(self._codec.encode, tiles)))
        if self._above is not None:
            self._above.add_rows(halve(band))
        band[:] = WHITE
        self.filled = 0
        self.row += 1
