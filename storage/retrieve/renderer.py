"""Rendered images and thumbnails of stored instances (PS3.18 §10.4.1.1.3-4), built from the
pyramid level that has just enough pixels, decoding only the tiles that are shown."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from storage.errors import ImageTooLarge, NotFound, NotRenderable
from storage.imaging.codecs import Pixels, decode
from storage.imaging.display import (
    Region,
    Rendered,
    RenderedType,
    RenderRequest,
    Viewport,
    colour_manage,
    encode_image,
    plan,
    resize,
    to_display,
)
from storage.imaging.tiles import best_level, thumbnail_candidate
from storage.records import StoredRecord
from storage.retrieve.described import Descriptions, Image
from storage.retrieve.frames import FrameReader


class Renderer:
    """Renders instances, frames and thumbnails."""

    def __init__(
        self,
        descriptions: Descriptions,
        frames: Callable[[StoredRecord], FrameReader],
        series_records: Callable[[str, str], list[StoredRecord]],
        max_pixels: int,
        thumbnail_size: int,
    ) -> None:
        self._described = descriptions
        self._frames = frames
        self._series_records = series_records
        self.max_pixels = max_pixels
        self.thumbnail_size = thumbnail_size

    def images(self, records: Sequence[StoredRecord]) -> list[Image]:
        """The images of *records* that have pixels this server decodes."""
        return [image for record in records if (image := self._described.image(record))]

    # -- rendering -----------------------------------------------------------------------------
    def render(
        self,
        record: StoredRecord,
        request: RenderRequest,
        frame: int | None = None,
        levels: Sequence[Image] = (),
    ) -> Rendered:
        """One image of the instance (its whole Total Pixel Matrix, or one *frame*).

        *levels* are the other images of the series: a whole-slide image is read from the
        smallest pyramid level that still has the pixels the output needs.
        """
        image = self._image(record, frame)
        region = plan(image.width, image.height, request.viewport, self.max_pixels)
        level = (
            image
            if frame is not None
            else best_level(image, levels, region.width, region.out_width)
        )
        pixels = self._read(image, level, region)
        warnings: list[str] = []
        window = request.window
        if window is not None and pixels.array.ndim == 3:
            warnings.append("the window parameter applies to grey images only and was ignored")
            window = None
        presentation = self._described.presentation(level.source)
        shown = resize(to_display(pixels, presentation, window), region)
        source_profile = self._described.icc_profile(record) if shown.ndim == 3 else None
        shown, profile = colour_manage(shown, source_profile, request.iccprofile)
        if request.media_type == RenderedType.GIF and request.iccprofile is None:
            profile = None  # GIF carries no profile; only an explicit request for one is an error
        quality = request.quality if request.media_type == RenderedType.JPEG else None
        return Rendered(encode_image(shown, request.media_type, quality, profile), warnings)

    def _image(self, record: StoredRecord, frame: int | None) -> Image:
        """The image of the instance (or of one of its frames); NotFound without pixel data,
        NotRenderable when they cannot be decoded here."""
        image = self._described.image(record)
        if image is None:
            if not record.number_of_frames:
                raise NotFound(f"instance {record.instance} has no pixel data to render")
            raise NotRenderable(
                f"instance {record.instance}: pixel data stored as {record.transfer_syntax} "
                "cannot be rendered here"
            )
        if frame is None:
            return image
        if not 1 <= frame <= record.number_of_frames:
            raise NotFound(
                f"instance {record.instance} has no frame {frame} "
                f"(it has {record.number_of_frames})"
            )
        return image.frame(frame)

    def _read(self, image: Image, level: Image, region: Region) -> Pixels:
        """The pixels of *region* (in *image*'s coordinates) from pyramid *level*: only the
        tiles that overlap it are decoded."""
        fx, fy = level.width / image.width, level.height / image.height
        x0, y0 = math.floor(region.x * fx), math.floor(region.y * fy)
        x1 = min(level.width, math.ceil((region.x + region.width) * fx))
        y1 = min(level.height, math.ceil((region.y + region.height) * fy))
        if (x1 - x0) * (y1 - y0) > 4 * self.max_pixels:
            raise ImageTooLarge(
                f"rendering this region needs {(x1 - x0) * (y1 - y0)} decoded pixels of the "
                "finest pyramid level available; give a smaller viewport or region"
            )
        reader = self._frames(level.source)
        syntax, info = level.source.transfer_syntax, level.info
        return level.read(
            x0,
            y0,
            max(x1 - x0, 1),
            max(y1 - y0, 1),
            lambda number: decode(reader.read(number), syntax, info),
        )

    def thumbnail(
        self, records: Sequence[StoredRecord], request: RenderRequest, frame: int | None = None
    ) -> Rendered:
        """A small image standing for *records* (a study, a series or one instance) that shows
        no patient data (§10.4.1.1.4)."""
        viewport = request.viewport or Viewport(self.thumbnail_size, self.thumbnail_size)
        request = RenderRequest(request.media_type, viewport, request.quality, None, None)
        images = self.images(records)
        if len(records) == 1:
            if not images:
                return self.render(records[0], request, frame)  # 404 or 406 as rendering says
            if images[0].patient_data:
                raise NotFound(
                    f"instance {records[0].instance} shows patient data (a label or burned-in "
                    "annotation); it has no thumbnail"
                )
            chosen = images[0]
        else:
            candidate = thumbnail_candidate(images)
            if candidate is None:
                raise NotFound("no image here can be shown in a thumbnail without patient data")
            chosen = candidate
        source = chosen.source
        levels = self.images(self._series_records(source.study, source.series))
        return self.render(source, request, frame, levels)
