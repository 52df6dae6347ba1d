"""Frame codecs: decode a stored frame to pixels, encode pixels in another transfer syntax.

imagecodecs does the JPEG family, JPEG-LS, JPEG 2000, HTJ2K and JPEG XL; pydicom's own codec
does RLE Lossless. Which transfer syntax each target writes, and the photometric
interpretation that results, follow PS3.5 §8.2 and §10 (e.g. JPEG 2000 with the reversible
colour transform is YBR_RCT, §8.2.4; lossy JPEG of colour images is YBR_FULL_422, §8.2.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import imagecodecs
import numpy as np
from pydicom.encaps import encapsulate
from pydicom.pixels.decoders import RLELosslessDecoder
from pydicom.pixels.encoders import RLELosslessEncoder

from storage.dicom.document import JsonDataset
from storage.dicom.syntaxes import (
    HTJ2K,
    J2K_FAMILY,
    JPEG2000,
    JPEG_FAMILY,
    JPEG_LS_FAMILY,
    JPEG_XL_FAMILY,
    JPEGXL,
    NATIVE,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGXLLossless,
    RLELossless,
)
from storage.errors import CodecError

DECODABLE = frozenset(
    {*NATIVE, *JPEG_FAMILY, *JPEG_LS_FAMILY, *J2K_FAMILY, *JPEG_XL_FAMILY, RLELossless}
)

# What a request may ask frames to be written in, in the order they are offered (lossless
# first). Lossy targets carry the method code of LossyImageCompressionMethod (PS3.3
# C.7.6.1.1.5.1).
LOSSY_METHOD: dict[str, str] = {
    JPEGBaseline8Bit: "ISO_10918_1",
    JPEG2000: "ISO_15444_1",
    HTJ2K: "ISO_15444_15",
    JPEGXL: "ISO_18181_1",
}
TARGETS = (
    ExplicitVRLittleEndian,
    JPEGLosslessSV1,
    JPEGLossless,
    JPEGLSLossless,
    JPEG2000Lossless,
    HTJ2KLossless,
    JPEGXLLossless,
    RLELossless,
    JPEGBaseline8Bit,
    JPEG2000,
    HTJ2K,
    JPEGXL,
)
# Photometric interpretations whose compressed form decodes to RGB (the codec undoes the
# colour transform: JFIF YCbCr in JPEG, the ICT/RCT in JPEG 2000).
_DECODES_TO_RGB = {"YBR_FULL_422", "YBR_FULL", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"}


@dataclass(frozen=True)
class ImageInfo:
    """The Image Pixel module attributes a codec needs (PS3.3 C.7.6.3)."""

    rows: int
    columns: int
    samples: int = 1
    bits_allocated: int = 8
    bits_stored: int = 8
    signed: bool = False
    photometric: str = "MONOCHROME2"
    planar: int = 0

    @classmethod
    def from_document(cls, document: JsonDataset) -> ImageInfo | None:
        """From a DICOM JSON data set; None when it has no pixel description."""
        rows, columns = document.integer("00280010", 0), document.integer("00280011", 0)
        if not rows or not columns:
            return None
        bits_allocated = document.integer("00280100", 8)
        return cls(
            rows=rows,
            columns=columns,
            samples=document.integer("00280002", 1),
            bits_allocated=bits_allocated,
            bits_stored=document.integer("00280101", bits_allocated),
            signed=document.integer("00280103", 0) == 1,
            photometric=document.text("00280004", "MONOCHROME2"),
            planar=document.integer("00280006", 0),
        )

    @property
    def dtype(self) -> np.dtype:
        size = {1: 1, 8: 1, 16: 2, 32: 4}.get(self.bits_allocated)
        if size is None:
            raise CodecError(f"{self.bits_allocated} bits allocated is not supported")
        return np.dtype(f"<{'i' if self.signed else 'u'}{size}")

    @property
    def shape(self) -> tuple[int, ...]:
        if self.samples == 1:
            return (self.rows, self.columns)
        return (self.rows, self.columns, self.samples)

    @property
    def native_frame_bytes(self) -> int:
        return self.rows * self.columns * self.samples * self.dtype.itemsize

    def pydicom_options(self, photometric: str | None = None) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "columns": self.columns,
            "samples_per_pixel": self.samples,
            "bits_allocated": self.bits_allocated,
            "bits_stored": self.bits_stored,
            "pixel_representation": int(self.signed),
            "photometric_interpretation": photometric or self.photometric,
            "number_of_frames": 1,
            "planar_configuration": 0,
        }


@dataclass(frozen=True)
class Pixels:
    """One decoded frame: (rows, columns[, samples]), colour-by-pixel, and what its samples
    mean."""

    array: np.ndarray
    photometric: str


@dataclass(frozen=True)
class Encoded:
    """One frame written in a transfer syntax, with the photometric interpretation it has."""

    data: bytes
    photometric: str
    lossy_method: str | None = None


def can_decode(transfer_syntax: str, info: ImageInfo) -> bool:
    """Whether frames of this form can be turned into pixels here."""
    if transfer_syntax not in DECODABLE or info.bits_allocated not in (8, 16, 32):
        return False
    if transfer_syntax in NATIVE and info.photometric in ("YBR_FULL_422", "YBR_PARTIAL_420"):
        return False  # native subsampled colour (PS3.3 C.7.6.3.1.2): not supported
    return transfer_syntax != ExplicitVRBigEndian


def can_encode(transfer_syntax: str, info: ImageInfo) -> bool:
    """Whether pixels like *info*'s can be written in *transfer_syntax*."""
    if info.samples not in (1, 3) or info.bits_allocated not in (8, 16, 32):
        return False
    if transfer_syntax == ExplicitVRLittleEndian:
        return True
    if info.signed or info.bits_allocated == 32 and transfer_syntax != RLELossless:
        return False
    if transfer_syntax in LOSSY_METHOD:
        # Quality targets are tuned for 8-bit samples (a PSNR goal on 16-bit data with a
        # small range would wipe it out).
        return info.bits_stored <= 8
    return transfer_syntax in TARGETS


def targets(stored: str, info: ImageInfo | None) -> list[str]:
    """The transfer syntaxes frames stored as *stored* can be transcoded to, in offer order."""
    if info is None or not can_decode(stored, info):
        return []
    return [ts for ts in TARGETS if ts != stored and can_encode(ts, info)]


def decode(data: bytes, transfer_syntax: str, info: ImageInfo) -> Pixels:
    """The pixels of one frame as stored (native byte order little endian)."""
    photometric = info.photometric
    try:
        if transfer_syntax in NATIVE:
            array = np.frombuffer(data, info.dtype, count=info.rows * info.columns * info.samples)
            if info.samples > 1 and info.planar == 1:
                array = array.reshape(info.samples, info.rows, info.columns).transpose(1, 2, 0)
            return Pixels(np.ascontiguousarray(array.reshape(info.shape)), photometric)
        if transfer_syntax == RLELossless:
            array, _ = RLELosslessDecoder.as_array(
                encapsulate([data]), index=0, **info.pydicom_options()
            )
            return Pixels(array.reshape(info.shape), photometric)
        if transfer_syntax in JPEG_FAMILY:
            array = imagecodecs.jpeg8_decode(data) if _is_dct(data) else _lossless_jpeg(data)
        elif transfer_syntax in JPEG_LS_FAMILY:
            array = imagecodecs.jpegls_decode(data)
        elif transfer_syntax in J2K_FAMILY:
            array = imagecodecs.jpeg2k_decode(data)
        else:
            array = imagecodecs.jpegxl_decode(data)
    except (imagecodecs.DelayedImportError, RuntimeError, ValueError) as exc:
        raise CodecError(f"cannot decode a frame stored as {transfer_syntax}: {exc}") from exc
    if array.shape[:2] != (info.rows, info.columns):
        raise CodecError(
            f"a frame decoded to {array.shape[1]}x{array.shape[0]} pixels, "
            f"the image says {info.columns}x{info.rows}"
        )
    if info.samples == 3 and photometric in _DECODES_TO_RGB and transfer_syntax != RLELossless:
        photometric = "RGB"
    return Pixels(np.ascontiguousarray(array.reshape(info.shape)), photometric)


def _is_dct(data: bytes) -> bool:
    """Whether a JPEG stream is DCT-based (SOF0-2) rather than lossless (SOF3)."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return True
        marker = data[position + 1]
        if marker in (0xC3, 0xC7, 0xCB, 0xCF):
            return False
        if marker in (0xC0, 0xC1, 0xC2):
            return True
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return True


def _lossless_jpeg(data: bytes) -> np.ndarray:
    try:
        return imagecodecs.jpeg8_decode(data)  # libjpeg-turbo ≥ 3 decodes process 14
    except RuntimeError:
        return imagecodecs.ljpeg_decode(data)


def encode(pixels: Pixels, info: ImageInfo, transfer_syntax: str, quality: int = 90) -> Encoded:
    """*pixels* written as one frame of *transfer_syntax*; *quality* (1-100) for lossy ones."""
    array = pixels.array
    if array.dtype != info.dtype:
        array = array.astype(info.dtype)
    photometric = pixels.photometric
    colour = array.ndim == 3
    method = LOSSY_METHOD.get(transfer_syntax)
    try:
        if transfer_syntax == ExplicitVRLittleEndian:
            return Encoded(array.tobytes(), photometric)
        if transfer_syntax == RLELossless:
            options = info.pydicom_options(photometric)
            return Encoded(bytes(RLELosslessEncoder.encode(array, **options)), photometric)
        if transfer_syntax in (JPEGLosslessSV1, JPEGLossless):
            data = imagecodecs.jpeg8_encode(
                array, lossless=True, predictor=1, bitspersample=info.bits_stored
            )
            return Encoded(bytes(data), photometric)
        if transfer_syntax == JPEGLSLossless:
            return Encoded(bytes(imagecodecs.jpegls_encode(array, level=0)), photometric)
        if transfer_syntax == JPEGBaseline8Bit:
            data = imagecodecs.jpeg8_encode(
                _rgb(array, photometric), level=quality, subsampling="422" if colour else None
            )
            return Encoded(bytes(data), "YBR_FULL_422" if colour else photometric, method)
        if transfer_syntax == JPEG2000Lossless:
            data = imagecodecs.jpeg2k_encode(
                array, codecformat="J2K", reversible=True, level=0, mct=photometric == "RGB"
            )
            return Encoded(bytes(data), _mct(photometric, "YBR_RCT"))
        if transfer_syntax == JPEG2000:
            # PSNR in dB: quality 90 → 47 dB, visually lossless for H&E.
            level = round(20 + 0.3 * quality)
            data = imagecodecs.jpeg2k_encode(
                _rgb(array, photometric), codecformat="J2K", level=level, mct=colour
            )
            return Encoded(bytes(data), "YBR_ICT" if colour else photometric, method)
        if transfer_syntax == HTJ2KLossless:
            data = imagecodecs.htj2k_encode(array, reversible=True)
            return Encoded(bytes(data), _mct(photometric, "YBR_RCT"))
        if transfer_syntax == HTJ2K:
            qstep = 0.001 * 2 ** ((100 - quality) / 10)  # quality 90 → 0.002
            data = imagecodecs.htj2k_encode(_rgb(array, photometric), level=qstep)
            return Encoded(bytes(data), "YBR_ICT" if colour else photometric, method)
        if transfer_syntax == JPEGXLLossless:
            return Encoded(bytes(imagecodecs.jpegxl_encode(array, lossless=True)), photometric)
        if transfer_syntax == JPEGXL:
            data = imagecodecs.jpegxl_encode(_rgb(array, photometric), level=quality)
            return Encoded(bytes(data), "RGB" if colour else photometric, method)
    except (imagecodecs.DelayedImportError, RuntimeError, ValueError) as exc:
        raise CodecError(f"cannot encode a frame as {transfer_syntax}: {exc}") from exc
    raise CodecError(f"frames cannot be written as {transfer_syntax}")


def _mct(photometric: str, transformed: str) -> str:
    return transformed if photometric == "RGB" else photometric


def _rgb(array: np.ndarray, photometric: str) -> np.ndarray:
    """Colour pixels as RGB for a lossy codec that applies its own colour transform."""
    if array.ndim == 3 and photometric == "YBR_FULL":
        return ybr_full_to_rgb(array)
    return array


def ybr_full_to_rgb(array: np.ndarray) -> np.ndarray:
    """YBR_FULL (PS3.3 C.7.6.3.1.2) to RGB, 8 bits per sample."""
    ybr = array.astype(np.float32)
    y, cb, cr = ybr[..., 0], ybr[..., 1] - 128.0, ybr[..., 2] - 128.0
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    rgb8: np.ndarray = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return rgb8
