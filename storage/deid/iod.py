"""The Type of an attribute in an object's IOD (PS3.3), from highdicom's tables of the
standard's IODs and modules: what the compound actions of Table E.1-1 choose by (PS3.15 E.1.1,
Table E.1-1a: X/Z, X/D, Z/D, X/Z/D, X/Z/U* keep the attribute only where the IOD needs it).
The tables are read as data (highdicom itself is not imported), and of the 22 MB of module
attributes only the compound rows and the sequences are kept: an export stays small."""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path as FilePath

from pydicom.datadict import keyword_for_tag

from storage.deid.table import compound_rows

Path = tuple[str, ...]  # the keywords of the sequences an attribute is in, then its own
RANK = {"1": 0, "1C": 1, "2": 2, "2C": 3, "3": 4}  # the most demanding Type wins
REQUIRED = frozenset(("1", "1C"))  # a value is needed (a condition is taken as met)
PRESENT = frozenset(("2", "2C"))  # the attribute is needed, empty or not
TABLES = "_standard"  # highdicom's folder of the standard's tables (JSON)


def _table(name: str) -> FilePath:
    spec = importlib.util.find_spec("highdicom")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("highdicom (its tables of the IODs) is not installed")
    return FilePath(next(iter(spec.submodule_search_locations))) / TABLES / name


@cache
def _modules() -> dict[str, list[tuple[Path, str]]]:
    """Each module's attributes that compound actions ask about, and its sequences, with
    their Types; the file is decoded one module at a time."""
    wanted = {keyword_for_tag(tag) for tag in compound_rows()} - {""}
    with open(_table("module_attribute_map.json"), encoding="utf-8") as fp:
        text = fp.read()
    decoder, space = json.JSONDecoder(), json.decoder.WHITESPACE.match  # type: ignore[attr-defined]
    found: dict[str, list[tuple[Path, str]]] = {}
    at = space(text, text.index("{") + 1).end()
    while text[at] != "}":
        module, at = decoder.raw_decode(text, at)
        at = space(text, space(text, at).end() + 1).end()  # past the colon
        attributes, at = decoder.raw_decode(text, at)
        found[module] = [
            ((*a["path"], a["keyword"]), str(a["type"]))
            for a in attributes
            if a["keyword"] in wanted or a["keyword"].endswith("Sequence")
        ]
        at = space(text, at).end()
        if text[at] == ",":
            at = space(text, at + 1).end()
    return found


@cache
def _types(sop_class: str) -> dict[Path, str] | None:
    """The attribute paths of the IOD of *sop_class* that _modules keeps, and their Types;
    None for a class highdicom does not describe."""
    iod = json.loads(_table("sop_class_iod_map.json").read_text()).get(sop_class)
    if iod is None:
        return None
    modules = _modules()
    found: dict[Path, str] = {}
    for module in json.loads(_table("iod_module_map.json").read_text())[iod]:
        for path, kind in modules.get(module["key"], []):
            if path not in found or RANK.get(kind, 4) < RANK.get(found[path], 4):
                found[path] = kind
    return found


def attribute_type(sop_class: str, path: Path) -> str | None:
    """The Type (1, 1C, 2, 2C, 3) of the attribute at *path* in the IOD of *sop_class*: "3"
    for one the IOD does not have (at the top level, or in a sequence it describes); None
    when it cannot say (an unknown class, or a sequence whose items it does not describe)."""
    types = _types(sop_class)
    if types is None or not path:
        return None
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
