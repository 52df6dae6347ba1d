"""Media types and transfer syntaxes: PS3.18 §8.7 tables and Accept negotiation (§8.7.8)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

from pydicom.uid import (
    HEVCM10P51,
    HEVCMP51,
    MPEG2MPHL,
    MPEG2MPML,
    MPEG4HP41,
    MPEG4HP41BD,
    MPEG4HP42STEREO,
    MPEG4HP422D,
    MPEG4HP423D,
)

from dicomweb.http.errors import HTTPError
from storage.dicom.syntaxes import (
    HTJ2K,
    JPEG2000,
    JPEG2000MC,
    JPEG_FAMILY,
    JPEG_LS_FAMILY,
    JPEG_XL_FAMILY,
    LOSSY,
    NATIVE,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGXLLossless,
    RLELossless,
)

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
OCTET_STREAM = "application/octet-stream"
JSON = "application/json"

# Table 8.7.3-5: media type of a frame (or bulk pixel data) by transfer syntax.
PIXEL_MEDIA_TYPE: dict[str, str] = {
    **{syntax: OCTET_STREAM for syntax in NATIVE},
    **{syntax: "image/jpeg" for syntax in JPEG_FAMILY},
    RLELossless: "image/dicom-rle",
    **{syntax: "image/jls" for syntax in JPEG_LS_FAMILY},
    JPEG2000Lossless: "image/jp2",
    JPEG2000: "image/jp2",
    JPEG2000MCLossless: "image/jpx",
    JPEG2000MC: "image/jpx",
    **{syntax: "image/jphc" for syntax in (HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K)},
    **{syntax: "image/jxl" for syntax in JPEG_XL_FAMILY},
    MPEG2MPML: "video/mpeg",
    MPEG2MPHL: "video/mpeg",
    **{
        syntax: "video/mp4"
        for syntax in (MPEG4HP41, MPEG4HP41BD, MPEG4HP422D, MPEG4HP423D, MPEG4HP42STEREO)
    },
    HEVCMP51: "video/H265",
    HEVCM10P51: "video/H265",
}
# The transfer syntax a media type means when the request names none (Tables 8.7.3-2/-4/-5).
DEFAULT_TRANSFER_SYNTAX = {
    DICOM: ExplicitVRLittleEndian,
    OCTET_STREAM: ExplicitVRLittleEndian,
    "image/jpeg": JPEGLosslessSV1,
    "image/dicom-rle": RLELossless,
    "image/jls": JPEGLSLossless,
    "image/jp2": JPEG2000Lossless,
    "image/jpx": JPEG2000MCLossless,
    "image/jphc": HTJ2KLossless,
    "image/jxl": JPEGXLLossless,
    "video/mpeg": MPEG2MPHL,
    "video/mp4": MPEG4HP41,
    "video/H265": HEVCMP51,
}
# Experimental names from earlier editions, still sent by some clients.
ALIASES = {
    "image/x-dicom-rle": "image/dicom-rle",
    "image/x-jls": "image/jls",
    "video/mpeg2": "video/mpeg",
}


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: ``type/subtype`` with parameters and a weight."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def is_multipart(self) -> bool:
        return self.media_type == "multipart/related"

    @property
    def part_type(self) -> str:
        """The media type of the parts (``type`` parameter) or the media type itself."""
        if self.is_multipart:
            return ALIASES.get(self.params.get("type", "*/*"), self.params.get("type", "*/*"))
        return ALIASES.get(self.media_type, self.media_type)

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


def _split(text: str, separator: str) -> list[str]:
    """Split on *separator* outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_media_type(text: str) -> tuple[str, dict[str, str]]:
    """``type/subtype; a=b; c="d"`` → (lower-case type, parameters)."""
    pieces = _split(text, ";")
    media_type = pieces[0].strip().lower()
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        if "=" not in piece:
            continue
        name, _, value = piece.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return media_type, params


# RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), ASCII digits
# (float() would take "nan", "1e3" or other scripts' digits); more decimals are tolerated.
_QVALUE = re.compile(r"[01](\.[0-9]{0,6})?")


def parse_accept(header: str | None) -> list[MediaRange]:
    """Media ranges of an Accept header, highest weight first (ties keep their order)."""
    ranges: list[MediaRange] = []
    for entry in _split(header or "", ","):
        if not entry.strip():
            continue
        media_type, params = parse_media_type(entry)
        if "/" not in media_type:
            raise HTTPError(400, f"malformed media range {entry.strip()[:200]!r} in Accept")
        weight = params.pop("q", "1")
        if _QVALUE.fullmatch(weight) is None or float(weight) > 1:
            raise HTTPError(400, f"malformed weight in Accept entry {entry.strip()[:200]!r}")
        ranges.append(MediaRange(media_type, params, float(weight)))
    return sorted((r for r in ranges if r.q > 0), key=lambda r: -r.q)


def requested_ranges(
    accept_header: str | None, accept_param: Sequence[str]
) -> tuple[MediaRange, ...]:
    """The `accept` query parameter takes precedence over the Accept header (§8.7.8.1)."""
    if accept_param:
        return _parsed(",".join(accept_param))
    if not accept_header:
        return (MediaRange("*/*"),)
    return _parsed(accept_header)


@lru_cache(maxsize=256)
def _parsed(header: str) -> tuple[MediaRange, ...]:
    # A viewer sends the same Accept header with every tile request: parse it once.
    return tuple(parse_accept(header))


def _type_matches(pattern: str, media_type: str) -> bool:
    if pattern in ("*/*", "*"):
        return True
    major, _, minor = pattern.partition("/")
    if minor == "*":
        return media_type.split("/")[0] == major
    return pattern == media_type


class Parts(StrEnum):
    """Whether a response is multipart: REQUIRED for a collection, OPTIONAL for a single item
    (§10.4.4 Note 3: the client's Accept decides), FORBIDDEN where only one part can be."""

    REQUIRED = "required"
    OPTIONAL = "optional"
    FORBIDDEN = "forbidden"


@dataclass(frozen=True)
class Choice:
    """What will be sent: the media type of each part, its transfer syntax, multipart or not."""

    media_type: str
    transfer_syntax: str
    multipart: bool


def negotiate(
    ranges: Iterable[MediaRange],
    offered: Sequence[tuple[str, str]],
    multipart: Parts = Parts.REQUIRED,
) -> Choice | None:
    """Pick what to send: the first offered (media type, transfer syntax) the ranges accept,
    by weight.

    *offered* lists what the server can produce, the stored form first. Among ranges of equal
    weight, one the stored form satisfies wins (no transcoding when the client does not
    prefer it: older dicom-microscopy-viewer builds list four types at q=1). A range without
    a transfer-syntax parameter asks for the media type's default transfer syntax, which the
    stored lossy form satisfies when nothing else exists (§8.7.3). ``transfer-syntax=*``
    accepts anything of the media type. *multipart* says whether the response may,
    or must, be multipart.
    """
    usable = [r for r in ranges if _allowed(r, multipart)]
    for weight in dict.fromkeys(r.q for r in usable):
        group = [r for r in usable if r.q == weight]
        for media_range in group:
            choice = _match(media_range, offered[:1], offered, multipart)
            if choice is not None:
                return choice
        for media_range in group:
            choice = _match(media_range, offered, offered, multipart)
            if choice is not None:
                return choice
    return None


def _allowed(media_range: MediaRange, multipart: Parts) -> bool:
    if media_range.is_multipart and multipart == Parts.FORBIDDEN:
        return False
    return not (
        not media_range.is_multipart
        and multipart == Parts.REQUIRED
        and media_range.media_type not in ("*/*", "*", "multipart/*")
    )


def _match(
    media_range: MediaRange,
    candidates: Sequence[tuple[str, str]],
    offered: Sequence[tuple[str, str]],
    multipart: Parts,
) -> Choice | None:
    """The first of *candidates* that *media_range* accepts."""
    wanted_ts = media_range.transfer_syntax
    if wanted_ts == "*" and media_range.part_type == OCTET_STREAM and offered:
        # "application/octet-stream; transfer-syntax=*" (OHIF's default for frames): any
        # transfer syntax will do, so the stored bytes go out as an octet stream.
        return Choice(
            OCTET_STREAM, offered[0][1], media_range.is_multipart or multipart == Parts.REQUIRED
        )
    for media_type, transfer_syntax in candidates:
        if not _type_matches(media_range.part_type, media_type):
            continue
        if wanted_ts == "*" or wanted_ts == transfer_syntax:
            pass
        elif wanted_ts is None:
            wildcard = "*" in media_range.part_type
            default = DEFAULT_TRANSFER_SYNTAX.get(media_type)
            only_lossy = transfer_syntax in LOSSY and offered[0][1] == transfer_syntax
            if not (wildcard or default is None or default == transfer_syntax or only_lossy):
                continue
        else:
            continue
        # A single-part response only when the client named a single-part type itself.
        is_multipart = (
            media_range.is_multipart or multipart == Parts.REQUIRED or "*" in media_range.media_type
        )
        return Choice(media_type, transfer_syntax, is_multipart)
    return None


def not_acceptable(what: str, offered: Sequence[tuple[str, str]]) -> HTTPError:
    """406 listing what is available (§8.5: "should return a payload that lists the available
    media types")."""
    available = ", ".join(f"{m}; transfer-syntax={ts}" for m, ts in offered)
    return HTTPError(
        406,
        f"none of the acceptable media types can be provided for {what}; available: {available}",
    )


def negotiate_rendered(
    ranges: Iterable[MediaRange], offered: Sequence[str], multipart: Parts = Parts.OPTIONAL
) -> Choice | None:
    """Pick a Rendered Media Type (§8.7.4) by weight; a wildcard range means the first
    offered, the default (image/jpeg, Table 8.7.4-1). Single part unless the client asked for
    multipart or the resource is a collection (*multipart* as in ``negotiate``)."""
    for media_range in ranges:
        if media_range.is_multipart and multipart == Parts.FORBIDDEN:
            continue
        if (
            not media_range.is_multipart
            and multipart == Parts.REQUIRED
            and media_range.media_type not in ("*/*", "*", "multipart/*")
        ):
            continue
        for media_type in offered:
            if _type_matches(media_range.part_type, media_type):
                is_multipart = media_range.is_multipart or multipart == Parts.REQUIRED
                return Choice(media_type, "", is_multipart)
    return None
