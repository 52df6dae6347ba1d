"""The Type of an attribute in an object's IOD (PS3.3), from highdicom's tables of the
standard's IODs and modules: what the compound actions of Table E.1-1 choose by (PS3.15 E.1.1,
Table E.1-1a: X/Z, X/D, Z/D, X/Z/D, X/Z/U* keep the attribute only where the IOD needs it)."""

from __future__ import annotations

from functools import cache

from highdicom._standard_utils import (
    get_iod_module_map,
    get_module_attribute_map,
    get_sop_class_iod_map,
)

Path = tuple[str, ...]  # the keywords of the sequences an attribute is in, then its own
RANK = {"1": 0, "1C": 1, "2": 2, "2C": 3, "3": 4}  # the most demanding Type wins
REQUIRED = frozenset(("1", "1C"))  # a value is needed (a condition is taken as met)
PRESENT = frozenset(("2", "2C"))  # the attribute is needed, empty or not
UNKNOWN_CLASS = None


@cache
def _types(sop_class: str) -> dict[Path, str] | None:
    """Every attribute path of the IOD of *sop_class* and its Type; None for a class
    highdicom does not describe."""
    iod = get_sop_class_iod_map().get(sop_class)
    if iod is None:
        return None
    attributes = get_module_attribute_map()
    found: dict[Path, str] = {}
    for module in get_iod_module_map()[iod]:
        for attribute in attributes.get(module["key"], []):
            path = (*attribute["path"], attribute["keyword"])
            kind = str(attribute["type"])
            if path not in found or RANK.get(kind, 4) < RANK.get(found[path], 4):
                found[path] = kind
    return found


def attribute_type(sop_class: str, path: Path) -> str | None:
    """The Type (1, 1C, 2, 2C, 3) of the attribute at *path* in the IOD of *sop_class*: "3"
    for one the IOD does not have (at the top level, or in a sequence it describes); None
    when it cannot say (an unknown class, or a sequence whose items it does not describe)."""
    types = _types(sop_class)
    if types is None or not path:
        return UNKNOWN_CLASS
    found = types.get(path)
    if found is not None:
        return found
    if len(path) == 1 or path[:-1] in types:
        return "3"
    return None


def resolve(action: str, kind: str | None) -> str:
    """The one action of a compound *action* for an attribute of Type *kind* (PS3.15
    Table E.1-1a); with *kind* None, the choice that keeps the attribute (a dummy rather than
    a removal: the object stays valid, and a dummy identifies no one)."""
    required = kind is None or kind in REQUIRED
    present = kind is None or kind in REQUIRED | PRESENT
    if action == "Z/D":
        return "D" if required else "Z"
    if action == "X/D":
        return "D" if present else "X"
    if action == "X/Z":
        return "Z" if present else "X"
    if action == "X/Z/D":
        return "D" if required else "Z" if present else "X"
    if action == "X/Z/U*":
        return "U" if required else "Z" if present else "X"
    return action
