"""DICOM JSON (PS3.18 Annex F) to the Native DICOM Model XML of PS3.19 Annex A."""

from __future__ import annotations

import re
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
