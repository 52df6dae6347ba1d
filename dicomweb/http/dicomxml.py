"""DICOM JSON (PS3.18 Annex F) to the Native DICOM Model XML of PS3.19 Annex A, and back."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from pydicom.datadict import keyword_for_tag

_PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
# Characters XML 1.0 cannot carry at all.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM" '
    'xml:space="preserve">'
)


def _text(value: object) -> str:
    return escape(_INVALID_XML.sub("\ufffd", str(value)))


def _person_name(number: int, value: dict) -> str:
    out = [f'<PersonName number="{number}">']
    for group in _PN_GROUPS:
        text = value.get(group)
        if not text:
            continue
        out.append(f"<{group}>")
        for name, component in zip(_PN_COMPONENTS, text.split("^"), strict=False):
            if component:
                out.append(f"<{name}>{_text(component)}</{name}>")
        out.append(f"</{group}>")
    out.append("</PersonName>")
    return "".join(out)


def _attributes(dataset: dict) -> str:
    out: list[str] = []
    for tag in sorted(dataset):
        element = dataset[tag]
        vr = element.get("vr", "UN")
        attrs = f'tag="{tag}" vr="{vr}"'
        keyword = keyword_for_tag(int(tag, 16))
        if keyword:
            attrs += f' keyword="{keyword}"'
        out.append(f"<DicomAttribute {attrs}>")
        if "Value" in element:
            for number, value in enumerate(element["Value"], start=1):
                if vr == "SQ":
                    out.append(f'<Item number="{number}">{_attributes(value or {})}</Item>')
                elif vr == "PN":
                    out.append(_person_name(number, value or {}))
                elif value is None:
                    out.append(f'<Value number="{number}"/>')
                else:
                    out.append(f'<Value number="{number}">{_text(value)}</Value>')
        elif "BulkDataURI" in element:
            out.append(f"<BulkData uri={quoteattr(element['BulkDataURI'])}/>")
        elif "InlineBinary" in element:
            out.append(f"<InlineBinary>{element['InlineBinary']}</InlineBinary>")
        out.append("</DicomAttribute>")
    return "".join(out)


def to_xml(dataset: dict) -> bytes:
    """One DICOM JSON object as a NativeDicomModel document."""
    return (_HEADER + _attributes(dataset) + "</NativeDicomModel>\n").encode("utf-8")


# PS3.5 §6.2: VRs whose DICOM JSON values are numbers (Annex F.2.3).
_INTEGER_VRS = frozenset({"IS", "SL", "SS", "SV", "UL", "US", "UV"})
_FLOAT_VRS = frozenset({"DS", "FL", "FD"})


def _local(name: str) -> str:
    return name.rpartition("}")[2]


def _children(node: ET.Element, name: str) -> list[ET.Element]:
    found = [child for child in node if _local(child.tag) == name]
    return sorted(found, key=lambda child: int(child.get("number", "0") or 0))


def _value(vr: str, text: str) -> object:
    if vr in _INTEGER_VRS:
        return int(text)
    if vr in _FLOAT_VRS:
        return float(text)
    return text


def _person_name_value(node: ET.Element) -> dict[str, str]:
    value: dict[str, str] = {}
    for group in node:
        components = {_local(child.tag): child.text or "" for child in group}
        value[_local(group.tag)] = "^".join(components.get(c, "") for c in _PN_COMPONENTS).rstrip(
            "^"
        )
    return value


def _from_attributes(node: ET.Element) -> dict:
    out: dict = {}
    for attribute in _children(node, "DicomAttribute"):
        tag = (attribute.get("tag") or "").upper()
        if len(tag) != 8:
            raise ValueError(f"a DicomAttribute has no valid tag: {tag[:20]!r}")
        vr = attribute.get("vr") or "UN"
        element: dict = {"vr": vr}
        bulk, inline = _children(attribute, "BulkData"), _children(attribute, "InlineBinary")
        if bulk:
            element["BulkDataURI"] = bulk[0].get("uri") or f"urn:uuid:{bulk[0].get('uuid')}"
        elif inline:
            element["InlineBinary"] = "".join((inline[0].text or "").split())
        elif vr == "SQ":
            element["Value"] = [_from_attributes(item) for item in _children(attribute, "Item")]
        elif vr == "PN":
            names = _children(attribute, "PersonName")
            if names:
                element["Value"] = [_person_name_value(name) for name in names]
        else:
            values = [
                _value(vr, value.text) if value.text is not None else None
                for value in _children(attribute, "Value")
            ]
            if values:
                element["Value"] = values
        out[tag] = element
    return out


def from_xml(data: bytes) -> dict:
    """A NativeDicomModel document (PS3.19 Annex A) as a DICOM JSON object; ValueError when
    it is no such document. Documents with a DTD are refused (no entity expansion)."""
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise ValueError("a document type declaration is not accepted")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(str(exc)) from exc
    if _local(root.tag) != "NativeDicomModel":
        raise ValueError(f"the root element is {_local(root.tag)[:40]}, not NativeDicomModel")
    return _from_attributes(root)
