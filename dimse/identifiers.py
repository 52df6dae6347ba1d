"""C-FIND / C-MOVE / C-GET identifiers to searches over the index, and results back to
identifiers (PS3.4 C.4 and C.6)."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from storage.query import INSTANCE, PATIENT, SERIES, STUDY, Search, attribute_for

LEVELS = {"PATIENT": PATIENT, "STUDY": STUDY, "SERIES": SERIES, "IMAGE": INSTANCE}
# Results of each level carry the attributes of the levels above them (PS3.4 C.4.1.2.3:
# the unique keys of the higher levels are returned; the others when requested).
CARRIES = {
    PATIENT: {PATIENT},
    STUDY: {PATIENT, STUDY},
    SERIES: {PATIENT, STUDY, SERIES},
    INSTANCE: {PATIENT, STUDY, SERIES, INSTANCE},
}
NOT_KEYS = {0x00080005, 0x00080052, 0x00080054, 0x00080056}


class IdentifierError(ValueError):
    """The identifier cannot be searched; ``status`` is the C-FIND/MOVE/GET failure status."""

    def __init__(self, message: str, status: int = 0xA900) -> None:
        super().__init__(message)
        self.status = status


def _text(value: object) -> str:
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


def search_for(identifier: Dataset) -> tuple[Search, list[int]]:
    """A Search from a C-FIND identifier, and the tags the response must echo."""
    level_name = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    if level_name not in LEVELS:
        raise IdentifierError(
            f"Query/Retrieve Level {level_name!r} is not one of PATIENT, STUDY, SERIES, IMAGE",
            0xC000,
        )
    level = LEVELS[level_name]
    search = Search(level, levels=CARRIES[level])
    requested: list[int] = []
    for element in identifier:
        if element.tag in NOT_KEYS:
            continue
        requested.append(element.tag)
        if element.VR == "SQ":
            items = element.value or Sequence([])
            if len(items) != 1:
                continue  # universal: return the sequence
            for sub in items[0]:
                attribute = attribute_for((element.tag, sub.tag))
                value = _text(sub.value)
                if attribute is not None and value:
                    search.filters.append((attribute, value))
            continue
        attribute = attribute_for((element.tag,))
        value = _text(element.value)
        if attribute is None:
            continue  # an optional key the archive cannot match: returned empty
        if value:
            search.filters.append((attribute, value))
        else:
            search.include.append(attribute)
    return search, requested


def dataset_from(result: dict, requested: list[int], level_name: str, ae_title: str) -> Dataset:
    """The response identifier for one match: every requested attribute (empty if unknown)."""
    document = {key: value for key, value in result.items() if not key.startswith("_")}
    full = Dataset.from_json(document)
    response = Dataset()
    response.SpecificCharacterSet = "ISO_IR 192"  # values are UTF-8 (decoded at ingest)
    response.QueryRetrieveLevel = level_name
    for tag in requested:
        if tag in full:
            response[tag] = full[tag]
        else:
            from pydicom.datadict import dictionary_VR

            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
            response.add_new(tag, vr, None)
    response.RetrieveAETitle = ae_title
    response.InstanceAvailability = "ONLINE"
    return response
