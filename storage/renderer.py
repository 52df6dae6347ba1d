"""Rendered images and thumbnails of stored instances (PS3.18 §10.4.1.1.3-4), built from the
pyramid level that has just enough pixels, decoding only the tiles that are shown."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from storage.archive import Archive
from storage.errors import ImageTooLarge, NotFound, NotRenderable
from storage.index import StoredRecord
from storage.pixels import ImageInfo, can_decode, decode
from storage.rendering import (
    Presentation,
    Viewport,
    Window,
    colour_manage,
    encode_image,
    plan,
    resize,
    to_display,
)
from storage.retrieve import (
    FrameReader,
    FrameTableCache,
    LruCache,
    header_element,
    parse_tag_path,
)
from storage.tiledimage import TiledImage, best_level, thumbnail_candidate

ICC_PROFILE = 0x00282000
OPTICAL_PATH_SEQUENCE = 0x00480105


@dataclass(frozen=True)
class RenderRequest:
    """The rendering parameters of a request (§8.3.5.1), already validated."""

    media_type: str = "image/jpeg"
    viewport: Viewport | None = None
    quality: int | None = None
    window: Window | None = None
    iccprofile: str | None = None


@dataclass
class Rendered:
    """An encoded image and the warnings (Warning: 299 texts) its rendering gave."""

    data: bytes
    warnings: list[str] = field(default_factory=list)


class Renderer:
    """Renders instances, frames and thumbnails of one archive."""

    def __init__(
        self,
        archive: Archive,
        frame_tables: FrameTableCache,
        max_pixels: int = 50_000_000,
        thumbnail_size: int = 256,
    ) -> None:
        self.archive = archive
        self.frame_tables = frame_tables
        self.max_pixels = max_pixels
        self.thumbnail_size = thumbnail_size
        # What each stored blob's metadata says, by (kind, blob key): blobs never change.
        self._described = LruCache(4096)

    # -- what the metadata says ----------------------------------------------------------------
    def document(self, record: StoredRecord) -> dict:
        return self.archive.document(record)

    def info(self, record: StoredRecord) -> ImageInfo | None:
        """The pixel description of an instance (None when it has no pixel data)."""
        if not record.number_of_frames:
            return None
        return self._described.get(
            ("info", record.blob_key), lambda: ImageInfo.from_document(self.document(record))
        )

    def image(self, record: StoredRecord) -> TiledImage | None:
        """The instance's image as tiles, or None when it has no pixels this server decodes."""

        def make() -> TiledImage | None:
            info = self.info(record)
            if info is None or not can_decode(record.transfer_syntax, info):
                return None
            return TiledImage.from_document(record, self.document(record), info)

        return self._described.get(("image", record.blob_key), make)

    def images(self, records: Sequence[StoredRecord]) -> list[TiledImage]:
        return [image for record in records if (image := self.image(record)) is not None]

    def icc_profile(self, record: StoredRecord) -> bytes | None:
        """The ICC profile of the instance's first optical path, or of the image itself."""

        def make() -> bytes | None:
            document = self.document(record)
            paths = []
            for item in document.get(f"{OPTICAL_PATH_SEQUENCE:08X}", {}).get("Value") or []:
                paths.append((item or {}).get(f"{ICC_PROFILE:08X}", {}))
                break
            paths.append(document.get(f"{ICC_PROFILE:08X}", {}))
            for element in paths:
                if "InlineBinary" in element:
                    return base64.b64decode(element["InlineBinary"])
                uri = element.get("BulkDataURI")
                if uri:
                    steps = parse_tag_path(uri.split("/bulkdata/", 1)[1])
                    return header_element(self.archive.blobs, record.blob_key, steps)[1]
            return None

        return self._described.get(("icc", record.blob_key), make)

    # -- rendering -----------------------------------------------------------------------------
    def render(
        self,
        record: StoredRecord,
        request: RenderRequest,
        frame: int | None = None,
        levels: Sequence[TiledImage] = (),
    ) -> Rendered:
        """One image of the instance (its whole Total Pixel Matrix, or one *frame*).

        *levels* are the other images of the series: a whole-slide image is read from the
        smallest pyramid level that still has the pixels the output needs.
        """
        image = self.image(record)
        if image is None:
            if not record.number_of_frames:
                raise NotFound(f"instance {record.instance} has no pixel data to render")
            raise NotRenderable(
                f"instance {record.instance}: pixel data stored as {record.transfer_syntax} "
                "cannot be rendered here"
            )
        warnings: list[str] = []
        if frame is not None:
            if not 1 <= frame <= record.number_of_frames:
                raise NotFound(
                    f"instance {record.instance} has no frame {frame} "
                    f"(it has {record.number_of_frames})"
                )
            image = TiledImage(
                record, image.info, image.info.columns, image.info.rows, {frame: (0, 0)}
            )
        region = plan(image.width, image.height, request.viewport, self.max_pixels)
        level = (
            image
            if frame is not None
            else best_level(image, levels, region.width, region.out_width)
        )
        fx, fy = level.width / image.width, level.height / image.height
        x0, y0 = math.floor(region.x * fx), math.floor(region.y * fy)
        x1 = min(level.width, math.ceil((region.x + region.width) * fx))
        y1 = min(level.height, math.ceil((region.y + region.height) * fy))
        if (x1 - x0) * (y1 - y0) > 4 * self.max_pixels:
            raise ImageTooLarge(
                f"rendering this region needs {(x1 - x0) * (y1 - y0)} decoded pixels of the "
                "finest pyramid level available; give a smaller viewport or region"
            )
        reader = FrameReader(self.archive.blobs, level.record, self.frame_tables.get(level.record))
        info = level.info
        pixels = level.read(
            x0,
            y0,
            max(x1 - x0, 1),
            max(y1 - y0, 1),
            lambda number: decode(reader.read(number), level.record.transfer_syntax, info),
        )
        window = request.window
        if window is not None and pixels.array.ndim == 3:
            warnings.append("the window parameter applies to grey images only and was ignored")
            window = None
        presentation = self._described.get(
            ("presentation", level.record.blob_key),
            lambda: Presentation.from_document(self.document(level.record)),
        )
        shown = resize(to_display(pixels, presentation, window), region)
        source_profile = self.icc_profile(record) if shown.ndim == 3 else None
        shown, profile = colour_manage(shown, source_profile, request.iccprofile)
        if request.media_type == "image/gif" and request.iccprofile is None:
            profile = None  # GIF carries no profile; only an explicit request for one is an error
        quality = request.quality if request.media_type == "image/jpeg" else None
        return Rendered(encode_image(shown, request.media_type, quality, profile), warnings)

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
        levels = self.images(self.archive.records(chosen.record.study, chosen.record.series))
        return self.render(chosen.record, request, frame, levels)


__all__ = ["RenderRequest", "Rendered", "Renderer"]
