"""A Part-10 instance built from DICOM JSON (PS3.18 Annex F) and bulk data files, streamed.

STOW-RS metadata plus bulk data (PS3.18 §10.5.1.2): the JSON holds every attribute, those with
a BulkDataURI name a part of the request whose bytes are the value. The bytes of bulk
data (pixel data, point coordinates, inside sequences too) are copied from their file into the
output in chunks, so an instance never has to fit in memory.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID
from pydicom.valuerep import VR

from storage.dicom.document import JsonObject
from storage.dicom.part10 import PREAMBLE
from storage.dicom.syntaxes import (
    NATIVE,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
)
from storage.dicom.uids import is_valid_uid, unpadded_uid
from storage.errors import InvalidInstance, UnsupportedTransferSyntax

COPY_CHUNK = 1 << 20
# The deepest nesting of JSON objects and arrays built (a sequence level is three: the
# attribute, its array of items, an item). Real objects nest a few sequences; building
# recurses per level, so a deeper instance is refused rather than exhausting the stack.
MAX_NESTING = 200
PIXEL_DATA = "7FE00010"
TRANSFER_SYNTAX_UID = "00020010"
STUDY_UID, SOP_CLASS_UID, SOP_INSTANCE_UID = "0020000D", "00080016", "00080018"
# PS3.5 §7.1.2: VRs whose explicit-VR header has a 4-byte length.
_LONG_LENGTH = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
# Padding of an odd-length value (PS3.5 §6.2): a space for text, NUL for bytes.
_TEXT_VRS = frozenset({"UC", "UR", "UT", "LT", "ST", "LO", "SH", "CS", "DS", "IS", "AE"})
_BYTE_VRS = frozenset({"OB", "UN"})
_VRS = frozenset(vr.value for vr in VR if len(vr.value) == 2)  # PS3.5 Table 6.2-1
_ITEM, _ITEM_DELIMITER, _SEQUENCE_DELIMITER = 0xE000, 0xE00D, 0xE0DD
_UNDEFINED = 0xFFFFFFFF


@dataclass(frozen=True)
class BulkPart:
    """One bulk data part of the request, received into a file."""

    number: int  # its position in the request
    path: Path
    size: int
    media_type: str
    transfer_syntax: str | None  # the transfer-syntax parameter of its Content-Type


Resolve = Callable[[str], list[BulkPart]]  # BulkDataURI -> the parts it names (or raise)


def _string(obj: JsonObject, tag: str) -> str | None:
    """The first value of the attribute *tag* when it is a non-empty string."""
    element = obj.get(tag)
    value = element.get("Value") if isinstance(element, dict) else None
    if isinstance(value, list) and value and isinstance(value[0], str) and value[0]:
        return value[0]
    return None


def identify(obj: object) -> tuple[str | None, str | None]:
    """The SOP Class and SOP Instance UIDs of one JSON instance, if it names them."""
    if not isinstance(obj, dict):
        return None, None
    return _string(obj, SOP_CLASS_UID), _string(obj, SOP_INSTANCE_UID)


def transfer_syntax_of(
    obj: JsonObject, pixel_parts: list[BulkPart], pixel_syntax: Callable[[BulkPart], str]
) -> str:
    """The transfer syntax to write: that of the compressed pixel data parts (their media type
    and transfer-syntax parameter, PS3.18 Table 8.7.3-5), which (0002,0010) of the JSON, when
    present, must agree with; else Explicit VR Little Endian."""
    declared = _string(obj, TRANSFER_SYNTAX_UID)
    if pixel_parts:
        syntaxes = {pixel_syntax(part) for part in pixel_parts}
        if len(syntaxes) > 1:
            raise InvalidInstance(
                f"the pixel data parts have several transfer syntaxes: {syntaxes}"
            )
        syntax = syntaxes.pop()
        if declared and declared != syntax and not (declared in NATIVE and syntax in NATIVE):
            raise InvalidInstance(
                f"the Transfer Syntax UID {declared} differs from the {syntax} of the pixel data"
            )
        declared = declared if declared and declared not in NATIVE else syntax
    if not declared or declared in NATIVE:
        if declared == ExplicitVRBigEndian:
            raise UnsupportedTransferSyntax("big endian bulk data is not accepted")
        # Native bulk data is little endian bytes (PS3.18 §8.7.3.3): written as Explicit VR
        # Little Endian whatever VR encoding the client named.
        return ExplicitVRLittleEndian
    return declared


def _header(tag: str, vr: str, length: int) -> bytes:
    if vr not in _VRS:
        raise InvalidInstance(f"the bulk data of ({tag[:4]},{tag[4:]}) has no valid VR: {vr[:20]}")
    group, element = int(tag[:4], 16), int(tag[4:], 16)
    if vr in _LONG_LENGTH:
        return struct.pack("<HH2s2xI", group, element, vr.encode(), length)
    if length > 0xFFFF:
        raise InvalidInstance(f"the bulk data of ({tag[:4]},{tag[4:]}) is too long for VR {vr}")
    return struct.pack("<HH2sH", group, element, vr.encode(), length)


def _padding(tag: str, vr: str, size: int) -> bytes:
    if size % 2 == 0:
        return b""
    if vr in _TEXT_VRS:
        return b" "
    if vr in _BYTE_VRS:
        return b"\0"
    raise InvalidInstance(f"the bulk data of ({tag[:4]},{tag[4:]}) has an odd length {size}")


def _copy(part: BulkPart, write: Callable[[bytes], None]) -> None:
    with part.path.open("rb") as source:
        while chunk := source.read(COPY_CHUNK):
            write(chunk)


def _nested(obj: object) -> Iterator[tuple[object, int]]:
    """Every JSON object and array in *obj* with its depth (1 for *obj*), in document order,
    without recursion (a hostile document may nest as deep as its parser allowed)."""
    pending: list[tuple[object, int]] = [(obj, 1)]
    while pending:
        value, depth = pending.pop()
        if not isinstance(value, dict | list):
            continue
        yield value, depth
        children = value.values() if isinstance(value, dict) else value
        pending += [(child, depth + 1) for child in reversed(list(children))]


def bulk_uris(obj: object) -> Iterator[str]:
    """Every BulkDataURI in a JSON instance, inside sequences too."""
    for value, _ in _nested(obj):
        if isinstance(value, dict) and isinstance(value.get("BulkDataURI"), str):
            yield value["BulkDataURI"]


def _dataset(obj: JsonObject) -> Dataset:
    """The data set of *obj*, which holds no bulk data (base64 is decoded, Annex F.2.7)."""
    try:
        return Dataset.from_json(obj)
    except Exception as exc:  # pydicom raises many kinds on a malformed JSON model
        raise InvalidInstance(f"the DICOM JSON cannot be read: {exc}") from exc


def write_instance(
    obj: object,
    resolve: Resolve,
    pixel_syntax: Callable[[BulkPart], str],
    write: Callable[[bytes], None],
) -> None:
    """Write one JSON instance as a Part-10 stream to *write* (PS3.10 §7.1 File Meta
    Information, then the data set in tag order); bulk data is copied from its file."""
    if not isinstance(obj, dict):
        raise InvalidInstance("an instance of the DICOM JSON array is not a JSON object")
    sop_class, sop_instance = identify(obj)
    if max(depth for _, depth in _nested(obj)) > MAX_NESTING:
        raise InvalidInstance(
            f"the DICOM JSON is nested deeper than {MAX_NESTING} levels", sop_class, sop_instance
        )
    for tag, name in (
        (STUDY_UID, "Study Instance UID"),
        (SOP_CLASS_UID, "SOP Class UID"),
        (SOP_INSTANCE_UID, "SOP Instance UID"),
    ):
        value = _string(obj, tag)
        if value is None:
            raise InvalidInstance(f"the instance has no {name} {tag}", sop_class, sop_instance)
        if not is_valid_uid(unpadded_uid(value, name)):
            # Before the File Meta Information, which pydicom cannot write with a UID that
            # is not Latin-1 (the ingest refuses any invalid UID, as it does here).
            raise InvalidInstance(f"the {name} {value[:80]!r} is not a valid UID (PS3.5 §9.1)")
    try:
        body = {tag: element for tag, element in obj.items() if not tag.startswith("0002")}
        pixel = body.get(PIXEL_DATA) or body.get(PIXEL_DATA.lower())
        pixel_parts = (
            resolve(str(pixel["BulkDataURI"]))
            if isinstance(pixel, dict) and "BulkDataURI" in pixel
            else []
        )
        syntax = transfer_syntax_of(obj, pixel_parts, pixel_syntax)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(str(sop_class))
        meta.MediaStorageSOPInstanceUID = UID(str(sop_instance))
        meta.TransferSyntaxUID = UID(syntax)
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        head = DicomBytesIO()
        write_file_meta_info(head, meta, enforce_standard=True)
        write(PREAMBLE + head.getvalue())
        _write_elements(body, resolve, syntax not in NATIVE, write)
    except InvalidInstance as exc:
        exc.sop_class = exc.sop_class or sop_class
        exc.sop_instance = exc.sop_instance or sop_instance
        raise


def _write_elements(
    obj: JsonObject, resolve: Resolve, encapsulated: bool, write: Callable[[bytes], None]
) -> None:
    """The elements of a data set or item in tag order: those without bulk data encoded by
    pydicom, bulk data copied from its parts, and sequences holding bulk data written here
    with undefined lengths (PS3.5 §7.5.2) so their bulk data is copied too."""
    body = {tag.upper(): element for tag, element in obj.items()}
    for tag, element in body.items():
        if len(tag) != 8 or not isinstance(element, dict):
            raise InvalidInstance(f"the attribute {tag[:20]} is not a DICOM JSON attribute")
    special = {
        tag: element
        for tag, element in body.items()
        if "BulkDataURI" in element
        or (element.get("vr") == "SQ" and next(bulk_uris(element.get("Value")), None))
    }
    plain = _dataset({tag: element for tag, element in body.items() if tag not in special})
    order = sorted({*(int(tag, 16) for tag in special), *(int(e.tag) for e in plain)})
    pending = Dataset()
    for number in order:
        tag = f"{number:08X}"
        if tag not in special:
            pending[number] = plain[number]
            continue
        _flush(pending, write)
        pending = Dataset()
        element = special[tag]
        if "BulkDataURI" not in element:
            write(struct.pack("<HH2s2xI", number >> 16, number & 0xFFFF, b"SQ", _UNDEFINED))
            for item in element.get("Value", []):
                if not isinstance(item, dict):
                    raise InvalidInstance(f"an item of ({tag[:4]},{tag[4:]}) is not an object")
                write(struct.pack("<HHI", 0xFFFE, _ITEM, _UNDEFINED))
                _write_elements(item, resolve, False, write)
                write(struct.pack("<HHI", 0xFFFE, _ITEM_DELIMITER, 0))
            write(struct.pack("<HHI", 0xFFFE, _SEQUENCE_DELIMITER, 0))
            continue
        uri = str(element["BulkDataURI"])
        parts = resolve(uri)
        if tag == PIXEL_DATA and encapsulated:
            _encapsulated(parts, write)
            continue
        if len(parts) > 1:  # frames are parts of compressed pixel data only
            raise InvalidInstance(
                f"the BulkDataURI {uri[:200]} of ({tag[:4]},{tag[4:]}) names {len(parts)} parts; "
                "only compressed pixel data is sent in several (a frame each)"
            )
        vr = str(element.get("vr", "UN"))
        size = sum(part.size for part in parts)
        padding = _padding(tag, vr, size)
        write(_header(tag, vr, size + len(padding)))
        for part in parts:
            _copy(part, write)
        write(padding)
    _flush(pending, write)


def _flush(dataset: Dataset, write: Callable[[bytes], None]) -> None:
    if not len(dataset):
        return
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    try:
        write_dataset(out, dataset)
    except Exception as exc:  # a value pydicom cannot encode in its VR
        raise InvalidInstance(f"the DICOM JSON cannot be encoded: {exc}") from exc
    write(out.getvalue())


def _encapsulated(frames: list[BulkPart], write: Callable[[bytes], None]) -> None:
    """Encapsulated pixel data (PS3.5 §A.4): an empty Basic Offset Table, then one fragment
    per part (each compressed part is one frame), then the sequence delimiter."""
    write(struct.pack("<HH2s2xI", 0x7FE0, 0x0010, b"OB", 0xFFFFFFFF))
    write(struct.pack("<HHI", 0xFFFE, _ITEM, 0))
    for frame in frames:
        padding = b"\0" * (frame.size % 2)
        write(struct.pack("<HHI", 0xFFFE, _ITEM, frame.size + len(padding)))
        _copy(frame, write)
        write(padding)
    write(struct.pack("<HHI", 0xFFFE, _SEQUENCE_DELIMITER, 0))
