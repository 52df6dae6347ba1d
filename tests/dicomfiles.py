"""Independent readings of test files with pydicom, to compare what the server returns with."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
from pydicom.encaps import generate_frames


def read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def frames(path: Path) -> list[bytes]:
    """Every frame of *path* as pydicom extracts it."""
    return _frames(read(path))


def frames_of(raw: bytes) -> list[bytes]:
    """Every frame of Part-10 bytes as pydicom extracts it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _frames(pydicom.dcmread(io.BytesIO(raw)))


def _frames(dataset: pydicom.Dataset) -> list[bytes]:
    if "PixelData" not in dataset:
        return []
    count = int(dataset.get("NumberOfFrames", 1) or 1)
    if dataset.file_meta.TransferSyntaxUID.is_encapsulated:
        return list(generate_frames(dataset.PixelData, number_of_frames=count))
    size = dataset.Rows * dataset.Columns * dataset.SamplesPerPixel * dataset.BitsAllocated // 8
    return [dataset.PixelData[i * size : (i + 1) * size] for i in range(count)]


def dataset_bytes(raw: bytes) -> bytes:
    """The data set of Part-10 bytes without its File Meta Information (which DIMSE does not
    carry: each receiver writes its own)."""
    meta_length = int.from_bytes(raw[140:144], "little")  # (0002,0000) group length value
    return raw[144 + meta_length :]


def multipart_body(
    parts: list[bytes],
    boundary: str = "wsiarchive-test-boundary",
    content_type: str = "application/dicom",
) -> tuple[bytes, str]:
    """A STOW-RS request body of raw Part-10 bytes, and its Content-Type."""
    chunks = []
    for part in parts:
        chunks.append(f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode())
        chunks.append(part)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/related; type="application/dicom"; boundary={boundary}'


def bulk_body(
    metadata: object,
    bulk: list[tuple[str, str, bytes]],
    boundary: str = "wsiarchive-test-boundary",
    metadata_type: str = "application/dicom+json",
) -> tuple[bytes, str]:
    """A STOW-RS metadata plus bulk data request (PS3.18 §10.5.1.2): the DICOM JSON part (or
    XML parts, one per instance, when *metadata* is a list of bytes and *metadata_type* XML),
    then (Content-Type, Content-Location, bytes) bulk parts; the body and its Content-Type."""
    import json

    if metadata_type == "application/dicom+xml":
        documents = list(metadata)  # type: ignore[call-overload]
    else:
        # default=str: pydicom's to_json_dict leaves DA/DT/TM values highdicom set as
        # objects (their str() is the DICOM string).
        document = metadata if isinstance(metadata, bytes) else json.dumps(metadata, default=str)
        documents = [document.encode() if isinstance(document, str) else document]
    chunks = []
    for document in documents:
        chunks.append(f"--{boundary}\r\nContent-Type: {metadata_type}\r\n\r\n".encode())
        chunks += [document, b"\r\n"]
    for content_type, location, data in bulk:
        chunks.append(
            f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Location: {location}\r\n\r\n".encode()
        )
        chunks += [data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    kind = f'multipart/related; type="{metadata_type}"'
    return b"".join(chunks), f"{kind}; boundary={boundary}"


def json_with_bulk(
    dataset: pydicom.Dataset, base: str = "http://client.example/bulk/"
) -> tuple[dict, list[tuple[str, str, bytes]]]:
    """*dataset* as DICOM JSON whose binary values of more than 64 bytes are bulk data parts
    (pydicom's bulk data element handler names each by a URI of its own)."""
    bulk: list[tuple[str, str, bytes]] = []

    def handler(element):  # type: ignore[no-untyped-def]
        uri = f"{base}{len(bulk) + 1}"
        bulk.append(("application/octet-stream", uri, bytes(element.value)))
        return uri

    document = dataset.to_json_dict(64, handler)
    if document.get("7FE00010", {}).get("vr") == "OB or OW":  # pydicom's ambiguous VR
        document["7FE00010"]["vr"] = "OW" if dataset.BitsAllocated > 8 else "OB"
    return document, bulk


def parse_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart response with the standard library's MIME parser (independent of
    both the server and dicomweb-client)."""
    import email.parser
    import email.policy

    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    if not message.is_multipart():
        raise ValueError(f"not a multipart message: {content_type}")
    parts = []
    for part in message.iter_parts():
        headers = {name.lower(): str(value).replace('"', "") for name, value in part.items()}
        parts.append((headers, part.get_payload(decode=True) or b""))
    return parts
