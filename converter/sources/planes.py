"""Any TIFF tifffile reads (OME-TIFF, QPTIFF, odd pyramids) as image planes held in memory.

The reader of last resort: it takes the base resolution of the file's first image series,
channels as optical paths and Z as focal planes (the first time point only), converts signed
8-bit data to unsigned by adding 128, and lets wsidicom build the pyramid. The planes are held
in memory, so files whose base planes exceed ``MAX_BYTES`` are refused.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import tifffile
from PIL import Image as Pillow
from PIL.Image import Image
from pydicom import Dataset
from wsidicom.codec import Channels, Encoder, Jpeg2kSettings
from wsidicom.geometry import Point, Size, SizeMm
from wsidicom.metadata import Image as ImageMetadata
from wsidicom.metadata import (
    ImageCoordinateSystem,
    OpticalPath,
    Pyramid,
    UidGenerator,
    WsiMetadata,
)
from wsidicom.metadata.image import ImageType
from wsidicom.metadata.schema.dicom.defaults import defaults
from wsidicomizer.dicomizer_source import DicomizerSource
from wsidicomizer.image_data import BaseDicomizerImageData
from wsidicomizer.metadata import MetadataPostProcessor, WsiDicomizerMetadata

MAX_BYTES = 4 << 30


class Planes:
    """The base planes of a TIFF as an array shaped (channel, z, y, x, samples)."""

    def __init__(self, path: Path, fallback_mpp: float | None) -> None:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise ValueError("the TIFF holds no image series")
            series = tif.series[0]
            base = series.levels[0] if series.levels else series
            axes, shape = base.axes, base.shape
            if np.prod(shape) * np.dtype(base.dtype).itemsize > MAX_BYTES:
                raise ValueError(
                    f"the base image ({'x'.join(map(str, shape))}) is too large to convert "
                    "from memory"
                )
            data = base.asarray()
            self.spacing_um, self.z_spacing_um, self.channel_names = _ome_physical(tif)
            if self.spacing_um is None:
                self.spacing_um = _tiff_resolution_um(base.keyframe)
        if self.spacing_um is None:
            self.spacing_um = fallback_mpp
        if self.spacing_um is None:
            raise ValueError(
                "the file gives no pixel size; give it with --mpp or the metadata key mpp"
            )
        self.array = _normalise(data, axes)
        if self.array.dtype == np.int8:
            self.array = (self.array.astype(np.int16) + 128).astype(np.uint8)
        elif self.array.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"pixel data of type {self.array.dtype} cannot be stored in DICOM WSI")
        channels = self.array.shape[0]
        if len(self.channel_names) != channels:
            self.channel_names = [str(c) for c in range(channels)]

    @property
    def rgb(self) -> bool:
        return bool(self.array.shape[-1] == 3)

    @property
    def spacing_mm(self) -> float:
        """The pixel size in millimetres (known once the planes are read)."""
        assert self.spacing_um is not None
        return self.spacing_um / 1000

    def focal_plane(self, index: int) -> float:
        """The position (µm) of focal plane *index*."""
        return round(index * (self.z_spacing_um or 1.0), 6)


def _normalise(data: np.ndarray, axes: str) -> np.ndarray:
    """Reorder to (C, Z, Y, X, S): the first index of T and other axes, missing axes added."""
    axes = axes.upper()
    for axis in list(axes):
        if axis not in "CZYXS":
            index = axes.index(axis)
            data = np.take(data, 0, axis=index)
            axes = axes.replace(axis, "", 1)
    for axis in "CZS":
        if axis not in axes:
            data = data[..., np.newaxis]
            axes += axis
    order = [axes.index(a) for a in "CZYXS"]
    data = np.transpose(data, order)
    if data.shape[-1] not in (1, 3):
        raise ValueError(f"{data.shape[-1]} samples per pixel cannot be stored in DICOM WSI")
    return np.ascontiguousarray(data)


def _ome_physical(tif: tifffile.TiffFile) -> tuple[float | None, float | None, list[str]]:
    """Pixel size (µm), Z step (µm) and channel names from OME-XML, where present."""
    if not tif.ome_metadata:
        return None, None, []
    try:
        root = ElementTree.fromstring(tif.ome_metadata)  # noqa: S314 (a local file)
    except ElementTree.ParseError:
        return None, None, []
    pixels = next((e for e in root.iter() if e.tag.endswith("Pixels")), None)
    if pixels is None:
        return None, None, []
    names = [
        c.get("Name") or c.get("ID") or str(i)
        for i, c in enumerate(e for e in pixels if e.tag.endswith("Channel"))
    ]
    size = pixels.get("PhysicalSizeX")
    unit = pixels.get("PhysicalSizeXUnit", "µm")
    z = pixels.get("PhysicalSizeZ")
    factor = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3}.get(unit, 1.0)
    return (float(size) * factor if size else None, float(z) if z else None, names)


def _tiff_resolution_um(page: tifffile.TiffPage) -> float | None:
    """Pixel size from XResolution when its unit is a real length (centimetre)."""
    try:
        if page.resolutionunit == tifffile.RESUNIT.CENTIMETER:
            x = page.resolution[0]
            return 1e4 / x if x else None
    except (AttributeError, TypeError, ZeroDivisionError):
        return None
    return None


def placed_at(z_um: float) -> ImageCoordinateSystem:
    """Where a volume image at focal plane *z_um* lies: wsidicom's default slide position,
    with the plane's Z Offset in Slide Coordinate System (µm, PS3.3 C.8.12.9). Without it
    every plane of a Z stack would claim the same focus and readers could not tell them apart."""
    return ImageCoordinateSystem.default_for(
        defaults.image_coordinate_system_rotation,
        ImageType.VOLUME,
        z_offset=z_um,
        slide_size_without_label=defaults.slide_size_without_label,
        slide_size_with_label=defaults.slide_size_with_label,
    )


class PlaneImageData(BaseDicomizerImageData):
    """One focal plane of a stack whose channels are optical paths (or one RGB image): what
    such image data is, whatever holds its pixels; ``_pixels`` gives a tile's."""

    def __init__(
        self,
        encoder: Encoder,
        tile_size: int,
        image_size: Size,
        spacing: SizeMm,
        focal_plane: float,
        channel_names: list[str],
        rgb: bool,
        dtype: np.dtype,
    ) -> None:
        super().__init__(encoder)
        self._tile_size = Size(tile_size, tile_size)
        self._image_size = image_size
        self._spacing = spacing
        self._focal_planes = [focal_plane]
        self._channel_names = channel_names
        self._rgb = rgb
        self._dtype = dtype

    transfer_syntax = property(lambda self: self.encoder.transfer_syntax)
    photometric_interpretation = property(lambda self: self.encoder.photometric_interpretation)
    pixel_spacing = property(lambda self: self._spacing)
    image_size = property(lambda self: self._image_size)
    tile_size = property(lambda self: self._tile_size)
    thread_safe = property(lambda self: True)
    focal_planes = property(lambda self: self._focal_planes)
    optical_paths = property(lambda self: self._channel_names)
    samples_per_pixel = property(lambda self: 3 if self._rgb else 1)

    @property
    def imaged_size(self) -> SizeMm:
        return self._spacing * self.image_size

    @property
    def tiled_size(self) -> Size:
        return self.image_size.ceil_div(self.tile_size)

    @property
    def pixel_origin(self) -> Point:
        return Point(0, 0)

    @property
    def image_coordinate_system(self) -> ImageCoordinateSystem:
        return placed_at(self._focal_planes[0])

    @cached_property
    def blank_decoded_tile(self) -> Image:
        return Pillow.fromarray(self._blank())

    @cached_property
    def blank_encoded_tile(self) -> bytes:
        return bytes(self.encoder.encode(self._blank()))

    def _blank(self) -> np.ndarray:
        shape: tuple[int, ...] = (self._tile_size.height, self._tile_size.width)
        return np.zeros(shape + ((3,) if self._rgb else ()), self._dtype)

    def _pixels(self, tile: Point, channel: int) -> np.ndarray:
        """The tile's pixels of *channel*, a full tile (zero beyond the image)."""
        raise NotImplementedError

    def get_decoded_tile(self, tile_point: Point, z: float, path: str) -> Image:
        return Pillow.fromarray(self._pixels(tile_point, self._channel_names.index(path)))

    def get_encoded_tile(self, tile: Point, z: float, path: str) -> bytes:
        pixels = self._pixels(tile, self._channel_names.index(path))
        return bytes(self.encoder.encode(pixels))


class PlanesImageData(PlaneImageData):
    """Tiles cut from the in-memory planes and encoded with the source's encoder."""

    def __init__(
        self, planes: Planes, tile_size: int, encoder: Encoder, metadata: ImageMetadata, plane: int
    ) -> None:
        _, _, height, width, _ = planes.array.shape
        spacing_mm = planes.spacing_mm
        super().__init__(
            encoder,
            tile_size,
            Size(width, height),
            metadata.pixel_spacing or SizeMm(spacing_mm, spacing_mm),
            planes.focal_plane(plane),
            planes.channel_names,
            planes.rgb,
            planes.array.dtype,
        )
        self._planes = planes
        self._plane = plane

    def _pixels(self, tile: Point, channel: int) -> np.ndarray:
        size = self._tile_size
        x, y = tile.x * size.width, tile.y * size.height
        data = self._planes.array[channel, self._plane, y : y + size.height, x : x + size.width]
        if not self._rgb:
            data = data[..., 0]
        if data.shape[:2] != (size.height, size.width):
            padded = self._blank()
            padded[: data.shape[0], : data.shape[1]] = data
            data = padded
        return data


def stack_encoder(encoder: Encoder, rgb: bool, bits: int) -> Encoder:
    """The encoder for a stack's tiles: the converter's for 8-bit RGB; for fluorescence and
    other non-RGB or 16-bit data lossless JPEG 2000, which keeps every value."""
    if rgb and bits == 8:
        return encoder
    return Encoder.create_for_settings(
        Jpeg2kSettings(levels=[0], bits=bits, channels=Channels.GRAYSCALE)
    )


class PlaneStackSource(DicomizerSource):
    """What the sources of channel and focal plane stacks share: their metadata
    (``_base_metadata``, set by the subclass), one pyramid per conversion's ``plane``, and
    no label, overview or thumbnail."""

    # Set per conversion on a subclass (converter.convert._configured), never here.
    fallback_mpp: float | None = None
    plane: int = 0
    _base_metadata: WsiDicomizerMetadata

    @property
    def base_metadata(self) -> WsiDicomizerMetadata:
        return self._base_metadata

    def _create_label_image_data(self) -> BaseDicomizerImageData | None:
        return None

    def _create_overview_image_data(self) -> BaseDicomizerImageData | None:
        return None

    def _create_thumbnail_image_data(self) -> BaseDicomizerImageData | None:
        return None


class PlanesSource(PlaneStackSource):
    """DicomizerSource over :class:`Planes`."""

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
        self._planes = Planes(filepath, type(self).fallback_mpp)
        bits = 16 if self._planes.array.dtype == np.uint16 else 8
        super().__init__(
            filepath,
            stack_encoder(encoder, self._planes.rgb, bits),
            tile_size or 512,
            metadata,
            default_metadata,
            include_confidential,
            metadata_post_processor,
            uid_generator,
        )
        spacing_mm = self._planes.spacing_mm
        self._base_metadata = WsiDicomizerMetadata(
            pyramid=Pyramid(
                image=ImageMetadata(pixel_spacing=SizeMm(spacing_mm, spacing_mm)),
                optical_paths=[OpticalPath(name) for name in self._planes.channel_names],
            )
        )

    @staticmethod
    def is_supported(path: Path) -> bool:
        try:
            with tifffile.TiffFile(path) as tif:
                return bool(tif.series) and len(tif.series[0].shape) >= 2
        except Exception:
            return False

    @property
    def focal_plane_count(self) -> int:
        return int(self._planes.array.shape[1])

    @property
    def pyramid_levels(self) -> dict[tuple[int, float, str], int]:
        # One focal plane per conversion (``plane``): the WG-26 profile allows a single focal
        # plane in a TILED_FULL instance, so a Z stack becomes one pyramid per plane.
        plane = type(self).plane
        return {(0, self._planes.focal_plane(plane), "0"): plane}

    def close(self) -> None:
        pass

    def _create_level_image_data(self, level_index: int) -> BaseDicomizerImageData:
        return PlanesImageData(
            self._planes, self._tile_size, self._encoder, self.metadata.pyramid.image, level_index
        )
