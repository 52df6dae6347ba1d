"""What each stored blob's metadata says about its pixels (description, tiles, presentation,
ICC profile), read once from its document and kept while the blob lives (blobs never change)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from storage.blobs import BlobStore
from storage.cache import Lru
from storage.dicom.document import JsonDataset
from storage.imaging.codecs import ImageInfo, can_decode, targets
from storage.imaging.display import Presentation
from storage.imaging.tiles import TiledImage
from storage.records import StoredRecord
from storage.retrieve.bulkdata import header_element, parse_tag_path

ICC_PROFILE = 0x00282000
OPTICAL_PATH_SEQUENCE = 0x00480105
T = TypeVar("T")

Image = TiledImage[StoredRecord]


class Descriptions:
    """Per-blob facts taken from instance documents, in one bounded cache."""

    def __init__(
        self, document: Callable[[StoredRecord], JsonDataset], blobs: BlobStore, capacity: int
    ) -> None:
        self._document = document
        self._blobs = blobs
        self._cache: Lru[Hashable, Any] = Lru(capacity, name="descriptions")

    def _get(self, kind: str, record: StoredRecord, make: Callable[[], T]) -> T:
        value: T = self._cache.get_or_make((kind, record.blob_key), make)
        return value

    def info(self, record: StoredRecord) -> ImageInfo | None:
        """The pixel description of an instance (None when it has no pixel data)."""
        if not record.number_of_frames:
            return None
        return self._get("info", record, lambda: ImageInfo.from_document(self._document(record)))

    def image(self, record: StoredRecord) -> Image | None:
        """The instance's image as tiles, or None when it has no pixels this server decodes."""

        def make() -> Image | None:
            info = self.info(record)
            if info is None or not can_decode(record.transfer_syntax, info):
                return None
            return TiledImage.from_document(
                record, record.blob_key, record.number_of_frames, self._document(record), info
            )

        return self._get("image", record, make)

    def targets(self, record: StoredRecord) -> tuple[str, ...]:
        """The transfer syntaxes the instance's frames can be transcoded to, in offer order."""
        return self._get(
            "targets", record, lambda: tuple(targets(record.transfer_syntax, self.info(record)))
        )

    def presentation(self, record: StoredRecord) -> Presentation:
        """The instance's own VOI and Modality LUT attributes."""
        return self._get(
            "presentation", record, lambda: Presentation.from_document(self._document(record))
        )

    def icc_profile(self, record: StoredRecord) -> bytes | None:
        """The ICC profile of the instance's first optical path, or of the image itself."""

        def make() -> bytes | None:
            document = self._document(record)
            elements = [
                path.element(ICC_PROFILE) for path in document.items(OPTICAL_PATH_SEQUENCE)[:1]
            ]
            elements.append(document.element(ICC_PROFILE))
            for element in elements:
                if "InlineBinary" in element:
                    return base64.b64decode(element["InlineBinary"])
                uri = element.get("BulkDataURI")
                if uri:
                    steps = parse_tag_path(uri.split("/bulkdata/", 1)[1])
                    return header_element(self._blobs, record.blob_key, steps)[1]
            return None

        return self._get("icc", record, make)
