"""Typed reads of a pydicom Dataset: text, integers, items and value lists of an element, and
the four UIDs that place an instance."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from storage.dicom.uids import is_valid_uid, unpadded_uid
from storage.errors import InvalidInstance


def values(dataset: Dataset, keyword: str) -> list[object]:
    """Every value of an element as a list: pydicom gives a single value (``DSfloat``,
    ``str``) for VM 1 and a MultiValue for more, so ``list()`` of it is wrong for VM 1."""
    value = dataset.get(keyword)
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def text(dataset: Dataset, keyword: str, limit: int) -> str:
    """The value as the index keeps it: values joined by '\\', NULs and padding dropped."""
    found = values(dataset, keyword)
    joined = "\\".join(str(v) for v in found)
    return joined.replace("\x00", "").strip()[:limit]


def integer(dataset: Dataset, keyword: str) -> int | None:
    """The first value as an integer, None when absent or not a number."""
    found = values(dataset, keyword)
    if not found or found[0] in (None, ""):
        return None
    value = found[0]
    try:
        return int(value) if isinstance(value, int | float) else int(str(value))
    except (TypeError, ValueError):
        return None


def items(dataset: Dataset, keyword: str) -> list[Dataset]:
    """The items of a sequence (none when absent or malformed)."""
    value = dataset.get(keyword)
    try:
        return [item for item in (value or []) if isinstance(item, Dataset)]
    except TypeError:
        return []


def _uid(dataset: Dataset, keyword: str, name: str) -> str:
    found = values(dataset, keyword)
    if len(found) > 1:
        raise InvalidInstance(f"{name} holds {len(found)} values, not one")
    value = unpadded_uid(str(found[0]) if found else "", name)[:200]
    if not value:
        raise InvalidInstance(f"{name} is missing")
    if not is_valid_uid(value):
        raise InvalidInstance(f"{name} {value!r} is not a valid UID (PS3.5 §9.1)")
    return value


def named_uids(dataset: Dataset) -> tuple[str | None, str | None]:
    """SOP Class and Instance UID of *dataset* when both are valid, for failure reports."""
    sop_class = text(dataset, "SOPClassUID", 200)
    sop_instance = text(dataset, "SOPInstanceUID", 200)
    if is_valid_uid(sop_class) and is_valid_uid(sop_instance):
        return sop_class, sop_instance
    return None, None


@dataclass(frozen=True)
class Identity:
    """The four UIDs that place an instance in the archive."""

    study: str
    series: str
    instance: str
    sop_class: str

    @classmethod
    def of(cls, dataset: Dataset) -> Identity:
        """Read and validate the UIDs; InvalidInstance names the one missing or malformed."""
        return cls(
            study=_uid(dataset, "StudyInstanceUID", "Study Instance UID (0020,000D)"),
            series=_uid(dataset, "SeriesInstanceUID", "Series Instance UID (0020,000E)"),
            instance=_uid(dataset, "SOPInstanceUID", "SOP Instance UID (0008,0018)"),
            sop_class=_uid(dataset, "SOPClassUID", "SOP Class UID (0008,0016)"),
        )
