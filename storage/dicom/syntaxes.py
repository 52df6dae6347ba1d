"""Transfer syntaxes by name (pydicom.uid's) and the groups the archive decides by (PS3.5 §10)."""

from __future__ import annotations

import pydicom.uid as _uid
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    JPEG2000MC,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    MPEGTransferSyntaxes,
    RLELossless,
)

# PS3.5 Table A-1: JPEG XL (Sup 232); pydicom 3.0 does not name these yet.
JPEGXLLossless = UID(getattr(_uid, "JPEGXLLossless", "1.2.840.10008.1.2.4.110"))
JPEGXLJPEGRecompression = UID(getattr(_uid, "JPEGXLJPEGRecompression", "1.2.840.10008.1.2.4.111"))
JPEGXL = UID(getattr(_uid, "JPEGXL", "1.2.840.10008.1.2.4.112"))

NATIVE = frozenset(
    {
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        ExplicitVRBigEndian,
    }
)
# Native frames that are the same bytes whatever the data set's VR encoding or deflation.
LITTLE_ENDIAN_NATIVE = frozenset(
    {ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian}
)
JPEG_FAMILY = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1})
JPEG_LS_FAMILY = frozenset({JPEGLSLossless, JPEGLSNearLossless})
# JPEG 2000 Part 1 and HTJ2K (the Part 2 multi-component syntaxes are not decoded here).
J2K_FAMILY = frozenset({JPEG2000Lossless, JPEG2000, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K})
JPEG_XL_FAMILY = frozenset({JPEGXLLossless, JPEGXLJPEGRecompression, JPEGXL})
# Lossy (or possibly lossy) encodings (PS3.5 §8.2, §10): the video syntaxes among them.
LOSSY = frozenset(
    {
        JPEGBaseline8Bit,
        JPEGExtended12Bit,
        JPEGLSNearLossless,
        JPEG2000,
        JPEG2000MC,
        HTJ2K,
        JPEGXLJPEGRecompression,
        JPEGXL,
        *(UID(uid) for uid in MPEGTransferSyntaxes),
    }
)


def same_pixels(stored: str, target: str) -> bool:
    """Whether frames stored as *stored* are already frames of *target*: little endian native
    frames are the same bytes whatever the VR encoding (or deflation) of the data set; big
    endian ones are not."""
    return stored == target or (
        stored in LITTLE_ENDIAN_NATIVE
        and target in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
    )


__all__ = [
    "HTJ2K",
    "J2K_FAMILY",
    "JPEG2000",
    "JPEG_FAMILY",
    "JPEG_LS_FAMILY",
    "JPEG_XL_FAMILY",
    "JPEGXL",
    "LITTLE_ENDIAN_NATIVE",
    "LOSSY",
    "NATIVE",
    "DeflatedExplicitVRLittleEndian",
    "ExplicitVRBigEndian",
    "ExplicitVRLittleEndian",
    "HTJ2KLossless",
    "HTJ2KLosslessRPCL",
    "ImplicitVRLittleEndian",
    "JPEG2000Lossless",
    "JPEG2000MC",
    "JPEG2000MCLossless",
    "JPEGBaseline8Bit",
    "JPEGExtended12Bit",
    "JPEGLSLossless",
    "JPEGLSNearLossless",
    "JPEGLossless",
    "JPEGLosslessSV1",
    "JPEGXLJPEGRecompression",
    "JPEGXLLossless",
    "RLELossless",
    "same_pixels",
]
