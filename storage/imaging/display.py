"""Rendering decoded pixels for display: VOI windowing, colour management, scaling, and
encoding as JPEG, PNG or GIF (the Rendered Media Types of PS3.18 §8.7.4)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from enum import StrEnum

import imagecodecs
import numpy as np
from PIL import Image

from storage.dicom.document import JsonDataset
from storage.errors import ImageTooLarge, InvalidRequest
from storage.imaging.codecs import Pixels, ybr_full_to_rgb

DEFAULT_QUALITY = 90  # JPEG quality (libjpeg scale) when the request gives none


class RenderedType(StrEnum):
    """The Rendered Media Types produced (PS3.18 Table 8.7.4-1), the default first."""

    JPEG = "image/jpeg"
    PNG = "image/png"
    GIF = "image/gif"


class WindowFunction(StrEnum):
    """VOI LUT Functions a ``window`` parameter may name (PS3.3 C.11.2.1.2-3)."""

    LINEAR = "linear"
    LINEAR_EXACT = "linear-exact"
    SIGMOID = "sigmoid"


class IccProfile(StrEnum):
    """Values of the ``iccprofile`` parameter (PS3.18 §8.3.5.1.5)."""

    NO = "no"
    YES = "yes"
    SRGB = "srgb"
    ADOBERGB = "adobergb"
    ROMMRGB = "rommrgb"


@dataclass(frozen=True)
class Viewport:
    """``viewport=vw,vh[,sx,sy,sw,sh]`` (PS3.18 §8.3.5.1.3): scale the region (sx, sy, |sw|,
    |sh|) of the source to fit vw x vh, keeping its aspect ratio; a negative sw or sh flips."""

    vw: int
    vh: int
    sx: int = 0
    sy: int = 0
    sw: int | None = None
    sh: int | None = None

    @property
    def crops(self) -> bool:
        return (self.sx, self.sy, self.sw, self.sh) != (0, 0, None, None)


@dataclass(frozen=True)
class Window:
    """``window=center,width,function`` (§8.3.5.1.4; functions of PS3.3 C.11.2.1.2)."""

    center: float
    width: float
    function: WindowFunction = WindowFunction.LINEAR


@dataclass(frozen=True)
class Region:
    """What part of a source of *width* x *height* pixels is shown, how large, and flipped."""

    x: int
    y: int
    width: int
    height: int
    out_width: int
    out_height: int
    flip_x: bool = False
    flip_y: bool = False


@dataclass(frozen=True)
class RenderRequest:
    """The rendering parameters of a request (§8.3.5.1), already validated."""

    media_type: RenderedType = RenderedType.JPEG
    viewport: Viewport | None = None
    quality: int | None = None
    window: Window | None = None
    iccprofile: IccProfile | None = None


@dataclass
class Rendered:
    """An encoded image and the warnings (Warning: 299 texts) its rendering gave."""

    data: bytes
    warnings: list[str] = field(default_factory=list)


def plan(width: int, height: int, viewport: Viewport | None, max_pixels: int) -> Region:
    """The region of a *width* x *height* source a viewport asks for, and the output size.

    Without a viewport the source is rendered at its own size (§8.3.5.1.3), which is refused
    above *max_pixels* (the caller answers 413).
    """
    if viewport is None:
        viewport = Viewport(width, height)
        fit = False
    else:
        fit = True
    if not (0 <= viewport.sx < width and 0 <= viewport.sy < height):
        raise InvalidRequest(
            f"viewport origin ({viewport.sx}, {viewport.sy}) is outside the {width}x{height} image"
        )
    sw = viewport.sw if viewport.sw is not None else width - viewport.sx
    sh = viewport.sh if viewport.sh is not None else height - viewport.sy
    if sw == 0 or sh == 0:
        raise InvalidRequest("viewport sw and sh must not be 0")
    region_width = min(abs(sw), width - viewport.sx)
    region_height = min(abs(sh), height - viewport.sy)
    if fit:
        scale = min(viewport.vw / region_width, viewport.vh / region_height)
        out_width = max(1, round(region_width * scale))
        out_height = max(1, round(region_height * scale))
    else:
        out_width, out_height = region_width, region_height
    if out_width * out_height > max_pixels:
        raise ImageTooLarge(
            f"the rendered image would be {out_width}x{out_height} pixels, more than the "
            f"{max_pixels} this server renders; give a smaller viewport"
        )
    return Region(
        viewport.sx,
        viewport.sy,
        region_width,
        region_height,
        out_width,
        out_height,
        flip_x=sw < 0,
        flip_y=sh < 0,
    )


@dataclass(frozen=True)
class Presentation:
    """How stored pixel values become displayed ones: the instance's own VOI and Modality LUT
    attributes (PS3.3 C.11.1, C.11.2)."""

    bits_stored: int = 8
    slope: float = 1.0
    intercept: float = 0.0
    window: Window | None = None

    @classmethod
    def from_document(cls, document: JsonDataset) -> Presentation:
        center = document.optional_number("00281050")
        width = document.optional_number("00281051")
        name = document.text("00281056", "LINEAR").lower().replace("_", "-")
        window = None
        if center is not None and width is not None:
            function = (
                WindowFunction(name) if name in set(WindowFunction) else WindowFunction.LINEAR
            )
            window = Window(center, width, function)
        return cls(
            bits_stored=document.integer("00280101", 8) or 8,
            slope=document.number("00281053", 1.0) or 1.0,
            intercept=document.number("00281052", 0.0),
            window=window,
        )


def to_display(pixels: Pixels, presentation: Presentation, window: Window | None) -> np.ndarray:
    """8-bit grey (rows, cols) or RGB (rows, cols, 3) pixels ready to show."""
    array = pixels.array
    photometric = pixels.photometric
    if array.ndim == 3:
        if photometric == "YBR_FULL":
            return ybr_full_to_rgb(array)
        if photometric not in ("RGB", "YBR_ICT", "YBR_RCT", "YBR_FULL_422"):
            raise InvalidRequest(f"rendering {photometric} images is not supported")
        if array.dtype != np.uint8:
            shift = max(presentation.bits_stored - 8, 0)
            shifted: np.ndarray = np.clip(array >> shift, 0, 255).astype(np.uint8)
            return shifted
        return array
    if photometric == "PALETTE COLOR":
        raise InvalidRequest("rendering PALETTE COLOR images is not supported")
    values = array.astype(np.float64) * presentation.slope + presentation.intercept
    window = window or presentation.window
    if window is None and array.dtype == np.uint8 and presentation.slope == 1:
        grey = array
    else:
        if window is None:  # no VOI given: the range of this image
            low, high = float(values.min()), float(values.max())
            window = Window((low + high) / 2, max(high - low, 1.0), WindowFunction.LINEAR_EXACT)
        grey = _apply_window(values, window)
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return grey


def _apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT), C.11.2.1.3.1 (SIGMOID)."""
    center, width = window.center, window.width
    if window.function == WindowFunction.SIGMOID:
        out = 255.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    elif window.function == WindowFunction.LINEAR_EXACT:
        out = ((values - center) / width + 0.5) * 255.0
    else:
        if width < 1:
            raise InvalidRequest("a linear window needs a width of at least 1")
        out = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def resize(array: np.ndarray, region: Region, source_scale: float = 1.0) -> np.ndarray:
    """Scale *array* (the region, read at 1/source_scale of the source's size) to the output
    size and apply the flips."""
    image = Image.fromarray(array)
    size = (region.out_width, region.out_height)
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if region.flip_x:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if region.flip_y:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return np.asarray(image)


def _rommrgb() -> bytes:
    # ROMM RGB (ISO 22028-2): D50 white, gamma 1.8.
    return imagecodecs.cms_profile(
        "rgb",
        whitepoint=(0.3457, 0.3585, 1.0),
        primaries=(0.7347, 0.2653, 1.0, 0.1596, 0.8404, 1.0, 0.0366, 0.0001, 1.0),
        gamma=1.8,
    )


def colour_manage(
    array: np.ndarray, source_profile: bytes | None, iccprofile: IccProfile | None
) -> tuple[np.ndarray, bytes | None]:
    """Apply the ``iccprofile`` parameter (§8.3.5.1.5): the pixels and the profile to embed.

    ``no``: no profile, pixels as stored. ``yes``: the instance's profile embedded (sRGB when
    it has none). ``srgb``/``adobergb``/``rommrgb``: pixels transformed from the instance's
    profile (sRGB assumed when it has none) into that space, whose profile is embedded.
    Absent: as ``yes`` when the instance has a profile, so colour-managed viewers show it
    right. Grey images carry no profile.
    """
    if array.ndim != 3 or iccprofile == IccProfile.NO:
        return array, None
    if iccprofile in (None, IccProfile.YES):
        if source_profile is None and iccprofile is None:
            return array, None
        return array, source_profile or imagecodecs.cms_profile("srgb")
    target = (
        _rommrgb() if iccprofile == IccProfile.ROMMRGB else imagecodecs.cms_profile(str(iccprofile))
    )
    source = source_profile or imagecodecs.cms_profile("srgb")
    try:
        out = imagecodecs.cms_transform(
            np.ascontiguousarray(array), source, target, colorspace="rgb", outcolorspace="rgb"
        )
    except (RuntimeError, ValueError) as exc:
        raise InvalidRequest(f"the instance's ICC profile cannot be applied: {exc}") from exc
    return out, target


def encode_image(
    array: np.ndarray, media_type: RenderedType, quality: int | None, icc_profile: bytes | None
) -> bytes:
    """8-bit pixels as a JPEG, PNG or GIF file, with the ICC profile embedded when given (JPEG
    APP2, PNG iCCP)."""
    image = Image.fromarray(array)
    out = io.BytesIO()
    extra = {"icc_profile": icc_profile} if icc_profile else {}
    if media_type == RenderedType.JPEG:
        image.save(out, "JPEG", quality=quality or DEFAULT_QUALITY, **extra)
    elif media_type == RenderedType.PNG:
        image.save(out, "PNG", compress_level=6, **extra)
    elif media_type == RenderedType.GIF:
        if icc_profile:
            raise InvalidRequest("image/gif cannot carry an ICC profile: use iccprofile=no")
        image.convert("P", palette=Image.Palette.ADAPTIVE).save(out, "GIF")
    else:
        raise InvalidRequest(f"{media_type} is not a rendered media type of this server")
    return out.getvalue()


__all__ = [
    "DEFAULT_QUALITY",
    "IccProfile",
    "Presentation",
    "Region",
    "Rendered",
    "RenderRequest",
    "RenderedType",
    "Viewport",
    "Window",
    "WindowFunction",
    "colour_manage",
    "encode_image",
    "plan",
    "resize",
    "to_display",
]
