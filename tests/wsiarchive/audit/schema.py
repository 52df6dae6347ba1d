"""The PS3.15 A.5.1 audit message schema (tests/data/dicom-audit-message.rnc) as a validator."""

from __future__ import annotations

import functools
import re

from lxml import etree

from tests.conftest import PROJECT

SCHEMA = PROJECT / "tests" / "data" / "dicom-audit-message.rnc"


@functools.cache
def audit_schema() -> etree.RelaxNG:
    """The schema, compiled by lxml (libxml2) after rnc2rng translates its compact syntax.
    The standard writes its value documentation as trailing `##` comments, which RELAX NG
    Compact only allows before a pattern (rnc2rng refuses them); they become plain `#`
    comments, which changes no pattern."""
    text = re.sub(r"##", "#", SCHEMA.read_text(encoding="utf-8"))
    return etree.RelaxNG.from_rnc_string(text)


def schema_errors(document: bytes) -> list[str]:
    """Why *document* is not a valid audit message (empty: it is)."""
    schema = audit_schema()
    if schema.validate(etree.fromstring(document)):
        return []
    return [str(error) for error in schema.error_log]
