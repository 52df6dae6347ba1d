"""Frame codecs: decode a stored frame to pixels, encode pixels in another transfer syntax.

imagecodecs does the JPEG family, JPEG-LS, JPEG 2000, HTJ2K and JPEG XL; pydicom's own codec
does RLE Lossless. Which transfer syntax each target writes, and the photometric
interpretation that results, follow PS3.5 §8.2 and §10 (e.g. JPEG 2000 with the reversible
colour transform is YBR_RCT, §8.2.4; lossy JPEG of colour images is YBR_FULL_422, §8.2.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import imagecodecs
import numpy as np
from pydicom.encaps import encapsulate
from pydicom.pixels.decoders import RLELosslessDecoder
from pydicom.pixels.encoders import RLELosslessEncoder

from storage.errors import CodecError

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
NATIVE = (EXPLICIT_VR_LE, IMPLICIT_VR_LE, DEFLATED_LE, EXPLICIT_VR_BE)

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
JPEGXL_LOSSLESS = "1.2.840.10008.1.2.4.110"
JPEGXL = "1.2.840.10008.1.2.4.112"
RLE = "1.2.840.10008.1.2.5"

_JPEG_FAMILY = (JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1)
_J2K_FAMILY = (J2K_LOSSLESS, J2K, HTJ2K_LOSSLESS, HTJ2K_RPCL, HTJ2K)
DECODABLE = (*NATIVE, *_JPEG_FAMILY, JPEG_LS_LOSSLESS, JPEG_LS_NEAR, *_J2K_FAMILY)
DECODABLE += (JPEGXL_LOSSLESS, "1.2.840.10008.1.2.4.111", JPEGXL, RLE)

# What a request may ask frames to be written in, in the order they are offered (lossless
# first). Lossy targets carry the method code of LossyImageCompressionMethod (PS3.3
# C.7.6.1.1.5.1).
LOSSY_METHOD = {
    JPEG_BASELINE: "ISO_10918_1",
    J2K: "ISO_15444_1",
    HTJ2K: "ISO_15444_15",
    JPEGXL: "ISO_18181_1",
}
TARGETS = (
    EXPLICIT_VR_LE,
    JPEG_LOSSLESS_SV1,
    JPEG_LOSSLESS,
    JPEG_LS_LOSSLESS,
    J2K_LOSSLESS,
    HTJ2K_LOSSLESS,
    JPEGXL_LOSSLESS,
    RLE,
    JPEG_BASELINE,
    J2K,
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
    def from_document(cls, document: dict) -> ImageInfo | None:
        """From a DICOM JSON data set; None when it has no pixel description."""

        def value(tag: str, default: object = None) -> object:
            values = document.get(tag, {}).get("Value")
            return values[0] if values else default

        rows, columns = value("00280010"), value("00280011")
        if not rows or not columns:
            return None
        bits_allocated = int(value("00280100", 8))  # type: ignore[arg-type]
        return cls(
            rows=int(rows),  # type: ignore[arg-type]
            columns=int(columns),  # type: ignore[arg-type]
            samples=int(value("00280002", 1)),  # type: ignore[arg-type]
            bits_allocated=bits_allocated,
            bits_stored=int(value("00280101", bits_allocated)),  # type: ignore[arg-type]
            signed=int(value("00280103", 0)) == 1,  # type: ignore[arg-type]
            photometric=str(value("00280004", "MONOCHROME2")).strip(),
            planar=int(value("00280006", 0)),  # type: ignore[arg-type]
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

    def pydicom_options(self, photometric: str | None = None) -> dict[str, object]:
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
    return transfer_syntax != EXPLICIT_VR_BE


def can_encode(transfer_syntax: str, info: ImageInfo) -> bool:
    """Whether pixels like *info*'s can be written in *transfer_syntax*."""
    if info.samples not in (1, 3) or info.bits_allocated not in (8, 16, 32):
        return False
    if transfer_syntax == EXPLICIT_VR_LE:
        return True
    if info.signed or info.bits_allocated == 32 and transfer_syntax != RLE:
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
        if transfer_syntax == RLE:
            array, _ = RLELosslessDecoder.as_array(
                encapsulate([data]), index=0, **info.pydicom_options()
            )
            return Pixels(array.reshape(info.shape), photometric)
        if transfer_syntax in _JPEG_FAMILY:
            array = imagecodecs.jpeg8_decode(data) if _is_dct(data) else _lossless_jpeg(data)
        elif transfer_syntax in (JPEG_LS_LOSSLESS, JPEG_LS_NEAR):
            array = imagecodecs.jpegls_decode(data)
        elif transfer_syntax in _J2K_FAMILY:
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
    if info.samples == 3 and photometric in _DECODES_TO_RGB and transfer_syntax != RLE:
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
        if transfer_syntax == EXPLICIT_VR_LE:
            return Encoded(array.tobytes(), photometric)
        if transfer_syntax == RLE:
            options = info.pydicom_options(photometric)
            return Encoded(bytes(RLELosslessEncoder.encode(array, **options)), photometric)
        if transfer_syntax in (JPEG_LOSSLESS_SV1, JPEG_LOSSLESS):
            data = imagecodecs.jpeg8_encode(
                array, lossless=True, predictor=1, bitspersample=info.bits_stored
            )
            return Encoded(data, photometric)
        if transfer_syntax == JPEG_LS_LOSSLESS:
            return Encoded(imagecodecs.jpegls_encode(array, level=0), photometric)
        if transfer_syntax == JPEG_BASELINE:
            data = imagecodecs.jpeg8_encode(
                _rgb(array, photometric), level=quality, subsampling="422" if colour else None
            )
            return Encoded(data, "YBR_FULL_422" if colour else photometric, method)
        if transfer_syntax == J2K_LOSSLESS:
            data = imagecodecs.jpeg2k_encode(
                array, codecformat="J2K", reversible=True, level=0, mct=photometric == "RGB"
            )
            return Encoded(data, _mct(photometric, "YBR_RCT"))
        if transfer_syntax == J2K:
            # PSNR in dB: quality 90 → 47 dB, visually lossless for H&E.
            level = 20 + 0.3 * quality
            data = imagecodecs.jpeg2k_encode(
                _rgb(array, photometric), codecformat="J2K", level=level, mct=colour
            )
            return Encoded(data, "YBR_ICT" if colour else photometric, method)
        if transfer_syntax == HTJ2K_LOSSLESS:
            data = imagecodecs.htj2k_encode(array, reversible=True)
            return Encoded(data, _mct(photometric, "YBR_RCT"))
        if transfer_syntax == HTJ2K:
            qstep = 0.001 * 2 ** ((100 - quality) / 10)  # quality 90 → 0.002
            data = imagecodecs.htj2k_encode(_rgb(array, photometric), level=qstep)
            return Encoded(data, "YBR_ICT" if colour else photometric, method)
        if transfer_syntax == JPEGXL_LOSSLESS:
            return Encoded(imagecodecs.jpegxl_encode(array, lossless=True), photometric)
        if transfer_syntax == JPEGXL:
            data = imagecodecs.jpegxl_encode(_rgb(array, photometric), level=quality)
            return Encoded(data, "RGB" if colour else photometric, method)
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
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
