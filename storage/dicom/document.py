"""The DICOM JSON document (PS3.18 Annex F) kept per instance, with large binaries as
BulkDataURIs, and a typed accessor for reading it."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from storage.errors import InvalidInstance

BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
# Binary values up to this many bytes travel inline (InlineBinary); larger ones by reference.
BULK_DATA_THRESHOLD = 1024
_BULK_KEY = b'"BulkDataURI":"/'
PIXEL_DATA = 0x7FE00010

JsonObject = dict[str, Any]


def tag_key(tag: int | str) -> str:
    """The DICOM JSON key of a tag: eight upper-case hex digits."""
    return tag if isinstance(tag, str) else f"{tag:08X}"


class JsonDataset:
    """Typed reads of a DICOM JSON object: every "first value of an attribute" goes here."""

    __slots__ = ("data",)

    def __init__(self, data: JsonObject | None) -> None:
        self.data: JsonObject = data or {}

    def element(self, tag: int | str) -> JsonObject:
        found = self.data.get(tag_key(tag))
        return found if isinstance(found, dict) else {}

    def values(self, tag: int | str) -> list[Any]:
        return list(self.element(tag).get("Value") or [])

    def first(self, tag: int | str, default: Any = None) -> Any:
        found = self.values(tag)
        return found[0] if found and found[0] is not None else default

    def text(self, tag: int | str, default: str = "") -> str:
        value = self.first(tag)
        return default if value is None else str(value).strip()

    def integer(self, tag: int | str, default: int) -> int:
        value = self.first(tag)
        return default if value in (None, "") else int(value)

    def number(self, tag: int | str, default: float) -> float:
        value = self.first(tag)
        return default if value in (None, "") else float(value)

    def optional_number(self, tag: int | str) -> float | None:
        value = self.first(tag)
        return None if value in (None, "") else float(value)

    def items(self, tag: int | str) -> list[JsonDataset]:
        return [JsonDataset(item) for item in self.values(tag) if isinstance(item, dict)]


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
    pixel_tag: int = PIXEL_DATA,
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


def render(documents: Iterable[bytes], base_url: str) -> Iterator[bytes]:
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


def absolutize(dataset: JsonObject, root: str) -> JsonObject:
    """Prefix every BulkDataURI of a loaded document (at any depth) with the service root."""
    for element in dataset.values():
        if "BulkDataURI" in element and element["BulkDataURI"].startswith("/"):
            element["BulkDataURI"] = root + element["BulkDataURI"]
        elif element.get("vr") == "SQ":
            for item in element.get("Value", []):
                absolutize(item or {}, root)
    return dataset


def load(document: bytes) -> JsonObject:
    """The stored document as a DICOM JSON object (BulkDataURIs relative to the service root)."""
    loaded: JsonObject = json.loads(zlib.decompress(document))
    return loaded
