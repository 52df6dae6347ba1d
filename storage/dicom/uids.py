"""UID validation, applied before a UID touches a path or a query.

PS3.5 §9.1 defines a UID as digit components separated by '.', no component with a leading
zero, at most 64 characters. Real devices write a few UIDs that break the length or the
leading-zero rule (the test corpus holds a 66-character one); refusing them would lose data,
so the archive accepts any UID of non-empty digit components up to 128 characters. That is
all a path or query needs to be safe; ``is_conformant_uid`` tells the strict rule apart.
"""

import re

from storage.errors import InvalidUID

_CONFORMANT = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_ACCEPTED = re.compile(r"[0-9]+(\.[0-9]+)*")
MAX_UID_LENGTH = 64
MAX_ACCEPTED_UID_LENGTH = 128


def is_conformant_uid(value: object) -> bool:
    """True when *value* obeys PS3.5 §9.1 exactly."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_UID_LENGTH
        and _CONFORMANT.fullmatch(value) is not None
    )


def is_valid_uid(value: object) -> bool:
    """True when the archive accepts *value* as a UID (see the module docstring)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ACCEPTED_UID_LENGTH
        and _ACCEPTED.fullmatch(value) is not None
    )


def validate_uid(value: object, what: str = "UID") -> str:
    """Return *value* unchanged if it is an accepted UID, else raise InvalidUID naming *what*."""
    if not is_valid_uid(value):
        raise InvalidUID(
            f"{what} {str(value)[:80]!r} is not a valid UID (PS3.5 §9.1: digits in components "
            "separated by '.')"
        )
    assert isinstance(value, str)
    return value
