"""C-FIND / C-MOVE / C-GET identifiers to searches over the index, and results back to
identifiers (PS3.4 C.4 and C.6)."""

from __future__ import annotations

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID

from dimse.statuses import CANNOT_UNDERSTAND, IDENTIFIER_DOES_NOT_MATCH
from storage.dicom.document import JsonObject
from storage.dicom.levels import Level
from storage.query.keys import attribute_for
from storage.query.search import Search

# The Query/Retrieve Information Models' SOP classes (PS3.4 C.6.1.3, C.6.2.3; pynetdicom
# names them at run time only): Patient Root and Study Root, each FIND, MOVE and GET.
PATIENT_ROOT_FIND = UID("1.2.840.10008.5.1.4.1.2.1.1")
PATIENT_ROOT_MOVE = UID("1.2.840.10008.5.1.4.1.2.1.2")
PATIENT_ROOT_GET = UID("1.2.840.10008.5.1.4.1.2.1.3")
STUDY_ROOT_FIND = UID("1.2.840.10008.5.1.4.1.2.2.1")
STUDY_ROOT_MOVE = UID("1.2.840.10008.5.1.4.1.2.2.2")
STUDY_ROOT_GET = UID("1.2.840.10008.5.1.4.1.2.2.3")

# Query/Retrieve Level (0008,0052) values (PS3.4 C.6.1.1).
LEVELS = {
    "PATIENT": Level.PATIENT,
    "STUDY": Level.STUDY,
    "SERIES": Level.SERIES,
    "IMAGE": Level.INSTANCE,
}
NOT_KEYS = {0x00080005, 0x00080052, 0x00080054, 0x00080056}


class IdentifierError(ValueError):
    """The identifier cannot be searched; ``status`` is the C-FIND/MOVE/GET failure status."""

    def __init__(self, message: str, status: int = IDENTIFIER_DOES_NOT_MATCH) -> None:
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
            CANNOT_UNDERSTAND,
        )
    level = LEVELS[level_name]
    # Results carry the attributes of the levels above them (PS3.4 C.4.1.2.3: the unique
    # keys of the higher levels are returned; the others when requested).
    search = Search(level, levels=set(level.down_to()))
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
                    search.where(attribute, value)
            continue
        attribute = attribute_for((element.tag,))
        value = _text(element.value)
        if attribute is None:
            continue  # an optional key the archive cannot match: returned empty
        if value:
            search.where(attribute, value)
        else:
            search.include.append(attribute)
    return search, requested


def dataset_from(
    result: JsonObject, requested: list[int], level_name: str, ae_title: str
) -> Dataset:
    """The response identifier for one match: every requested attribute (empty if unknown)."""
    full = Dataset.from_json(result)
    response = Dataset()
    response.SpecificCharacterSet = "ISO_IR 192"  # values are UTF-8 (decoded at ingest)
    response.QueryRetrieveLevel = level_name
    for tag in requested:
        if tag in full:
            response[tag] = full[tag]
        else:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
            response.add_new(tag, vr, None)
    response.RetrieveAETitle = ae_title
    response.InstanceAvailability = "ONLINE"
    return response
