"""The one builder of ``Warning`` header fields.

PS3.18 (e.g. §8.3.4.2) writes ``Warning: 299 <service>: <text>``; RFC 7234 §5.5 gives the
field's grammar, ``warn-code SP warn-agent SP warn-text``, where the warn-agent is a host
(and port) or a pseudonym and the warn-text a quoted-string (RFC 9110 §5.6.4). The service
is named by the host and port of its base URL, and the text is quoted: '"' and '\\' are
escaped with a backslash, and characters a quoted-string cannot hold at all (controls, DEL)
become spaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MISCELLANEOUS_PERSISTENT_WARNING = 299  # RFC 7234 §5.5.7
MAX_TEXT = 300  # characters of one warn-text
MAX_VALUES = 20  # warning-values in one field
_NOT_QUOTABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def quoted_string(text: str) -> str:
    """*text* as an RFC 9110 §5.6.4 quoted-string."""
    text = _NOT_QUOTABLE.sub(" ", text[:MAX_TEXT])
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
