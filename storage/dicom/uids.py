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


def unpadded_uid(value: str, what: str = "UID") -> str:
    """A UI value as stored in a data set, without its padding. PS3.5 §6.2 (Table 6.2-1, UI)
    and §9.1 pad a UI value to even length with one trailing NUL (and real writers pad with
    a space): that padding goes, the same way wherever a UID is read (pydicom strips it the
    same way for the metadata document). Any other NUL is invalid and refused: dropping it
    would index the UID as another value than the one stored."""
    unpadded = value.rstrip("\0 ").strip(" ")
    if "\0" in unpadded:
        raise InvalidUID(
            f"{what} {unpadded[:80]!r} holds a NUL character (PS3.5 §9.1: only a single "
            "trailing NUL pads a UID)"
        )
    return unpadded


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
