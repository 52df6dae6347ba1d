"""An independent reader of Warning header fields (RFC 7234 §5.5, quoted-string per RFC 9110
§5.6.4), for checking what the server writes."""

from __future__ import annotations

import re

_WARNING = re.compile(r'\s*(\d{3}) ([^\s"]+) "((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\.)*)"\s*(?:,|$)')


def parse_warnings(field: str) -> list[tuple[int, str, str]]:
    """(warn-code, warn-agent, text) of every warning-value; ValueError when the field does
    not follow the grammar."""
    values = []
    position = 0
    while position < len(field):
        match = _WARNING.match(field, position)
        if match is None:
            raise ValueError(f"not a Warning field at {position}: {field[position:]!r}")
        code, agent, quoted = match.groups()
        values.append((int(code), agent, re.sub(r"\\(.)", r"\1", quoted)))
        position = match.end()
    return values
