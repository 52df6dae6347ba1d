"""Bulk data of stored instances: values by tag path from the blob's header, and whole blobs
in chunks."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydicom.dataset import Dataset

from storage.blobs import BlobStore
from storage.dicom.part10 import read_header
from storage.errors import InvalidRequest, NotFound

CHUNK = 1 << 20


def blob_chunks(blobs: BlobStore, key: str, chunk: int = CHUNK) -> Iterator[bytes]:
    """The whole blob, in chunks (never all in memory)."""
    with blobs.open(key) as fp:
        while data := fp.read(chunk):
            yield data


_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_ITEM = re.compile(r"[0-9]{1,9}")


def parse_tag_path(path: str) -> list[int | str]:
    """``00480105/0/00282000`` → [0x00480105, 0, 0x00282000]; raise InvalidRequest-like 400s."""
    parts = path.strip("/").split("/")
    steps: list[int | str] = []
    for position, part in enumerate(parts):
        if position % 2 == 0:
            # ASCII hex only: int(part, 16) also takes '0x', '_' and other scripts' digits.
            if _TAG.fullmatch(part) is None:
                raise InvalidRequest(f"bulk data path {path[:200]!r} is malformed")
            steps.append(int(part, 16))
        else:
            if _ITEM.fullmatch(part) is None:
                raise InvalidRequest(f"bulk data path {path[:200]!r} is malformed")
            steps.append(part)
    return steps


def header_element(blobs: BlobStore, key: str, steps: list[int | str]) -> tuple[str, bytes]:
    """The VR and raw value of a non-pixel element, read from the blob's header."""
    with blobs.open(key) as fp:
        dataset = read_header(fp)
    current: Dataset = dataset
    for position, step in enumerate(steps):
        if isinstance(step, str):
            continue
        if step not in current:
            raise NotFound("no such bulk data")
        element = current[step]
        if position == len(steps) - 1:
            value = element.value
            if isinstance(value, str):
                value = value.encode("utf-8")
            if not isinstance(value, bytes | bytearray):
                raise NotFound("no such bulk data")
            return element.VR, bytes(value)
        item_number = int(steps[position + 1])
        if element.VR != "SQ" or item_number >= len(element.value):
            raise NotFound("no such bulk data")
        current = element.value[item_number]
    raise NotFound("no such bulk data")
