"""The one builder of ``Warning`` header fields.

PS3.18 (e.g. §8.3.4.2) writes ``Warning: 299 <service>: <text>``; RFC 7234 §5.5 gives the
field's grammar, ``warn-code SP warn-agent SP warn-text``, where the warn-agent is a host
(and port) or a pseudonym and the warn-text a quoted-string (RFC 9110 §5.6.4). The service
is named by the host and port of its base URL, and the text is quoted: '"' and '\\' are
escaped with a backslash, and every character but visible ASCII and space (controls such
as CR and LF, DEL, and non-ASCII, which RFC 9110 §5.5 leaves to obs-text) is percent-encoded
as UTF-8, so a client's text echoed in a reason can never end the field or start another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MISCELLANEOUS_PERSISTENT_WARNING = 299  # RFC 7234 §5.5.7
MAX_TEXT = 300  # characters of one warn-text
MAX_VALUES = 20  # warning-values in one field
_NOT_VISIBLE = re.compile(r"[^\x20-\x7e]")


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8", "replace"))


def quoted_string(text: str) -> str:
    """*text* as an RFC 9110 §5.6.4 quoted-string of visible ASCII."""
    text = _NOT_VISIBLE.sub(_percent, text[:MAX_TEXT])
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def warn_agent(root: str) -> str:
    """The warn-agent for a service at *root*: its uri-host[:port], or a pseudonym."""
    netloc = urlsplit(root).netloc.rpartition("@")[2]
    return netloc or "wsiarchive"


def warning_header(texts: Iterable[str], root: str) -> dict[str, str]:
    """``{"Warning": ...}`` carrying each distinct text once (in order), or ``{}``."""
    unique = list(dict.fromkeys(texts))[:MAX_VALUES]
    if not unique:
        return {}
    agent = warn_agent(root)
    values = (
        f"{MISCELLANEOUS_PERSISTENT_WARNING} {agent} {quoted_string(text)}" for text in unique
    )
    return {"Warning": ", ".join(values)}
