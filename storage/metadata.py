"""The DICOM JSON document kept per instance, with large binaries as BulkDataURIs."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from storage.errors import InvalidInstance

BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
# Binary values up to this many bytes travel inline (InlineBinary); larger ones by reference.
BULK_DATA_THRESHOLD = 1024
_BULK_KEY = b'"BulkDataURI":"/'


def instance_path(study: str, series: str, instance: str) -> str:
    """The resource path of an instance below the DICOMweb root."""
    return f"/studies/{study}/series/{series}/instances/{instance}"


def bulkdata_paths(dataset: Dataset, prefix: str = "") -> dict[int, str]:
    """Map id() of each large binary element to its tag path (``00480105/0/00282000``)."""
    paths: dict[int, str] = {}
    for element in dataset:
        if element.VR == "SQ":
            for number, item in enumerate(element.value):
                paths.update(bulkdata_paths(item, f"{prefix}{element.tag:08X}/{number}/"))
        elif element.VR in BINARY_VRS:
            paths[id(element)] = f"{prefix}{element.tag:08X}"
    return paths


def build_document(
    dataset: Dataset,
    study: str,
    series: str,
    instance: str,
    pixel_vr: str | None,
    pixel_tag: int = 0x7FE00010,
) -> bytes:
    """Compact DICOM JSON (PS3.18 Annex F) of *dataset*; returns it zlib-compressed.

    BulkDataURIs are stored as paths from the service root ("/studies/..."); ``render``
    prefixes the public base URL when the document is served.
    """
    base = instance_path(study, series, instance) + "/bulkdata/"
    try:
        paths = bulkdata_paths(dataset)

        def handler(element: DataElement) -> str:
            return base + paths.get(id(element), f"{element.tag:08X}")

        document = dataset.to_json_dict(BULK_DATA_THRESHOLD, handler)
    except Exception as exc:  # pydicom raises many kinds for malformed values
        raise InvalidInstance(f"the data set cannot be encoded as DICOM JSON: {exc}") from exc
    if pixel_vr is not None:
        document[f"{pixel_tag:08X}"] = {"vr": pixel_vr, "BulkDataURI": base + f"{pixel_tag:08X}"}
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return zlib.compress(text.encode("utf-8"), 6)


def render(documents: Iterable[bytes], base_url: str) -> Iterable[bytes]:
    """Stream stored documents as one JSON array with absolute BulkDataURIs under *base_url*."""
    # Within compact JSON the byte string '"BulkDataURI":"/' only occurs as a key and the start
    # of its value: quotes inside string values are escaped.
    replacement = b'"BulkDataURI":"' + json.dumps(base_url)[1:-1].encode("utf-8") + b"/"
    yield b"["
    for number, document in enumerate(documents):
        if number:
            yield b","
        yield zlib.decompress(document).replace(_BULK_KEY, replacement)
    yield b"]"


def absolutize(dataset: dict, root: str) -> dict:
    """Prefix every BulkDataURI of a loaded document (at any depth) with the service root."""
    for element in dataset.values():
        if "BulkDataURI" in element and element["BulkDataURI"].startswith("/"):
            element["BulkDataURI"] = root + element["BulkDataURI"]
        elif element.get("vr") == "SQ":
            for item in element.get("Value", []):
                absolutize(item or {}, root)
    return dataset


def load(document: bytes) -> dict:
    """The stored document as a DICOM JSON object (BulkDataURIs relative to the service root)."""
    return json.loads(zlib.decompress(document))
