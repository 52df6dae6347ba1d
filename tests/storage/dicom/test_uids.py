"""UID validation, applied before a UID touches a path or a query (PS3.5 §9.1)."""

from __future__ import annotations

import pytest

from storage.dicom.uids import is_conformant_uid, is_valid_uid, validate_uid


def test_uid_grammar() -> None:
    assert is_conformant_uid("1.2.840.10008.5.1.4.1.1.77.1.6")
    assert is_conformant_uid("0")
    assert not is_conformant_uid("1.02.3")  # leading zero
    assert not is_conformant_uid("1." + "2" * 63)  # 65 characters
    assert is_valid_uid("1." + "2" * 64)  # accepted: a real file in the corpus has one
    for bad in ("", "1..2", ".1", "1.", "1.2.a", "1.2/3", "../1", "1.2 ", "1" * 129, None, 12):
        assert not is_valid_uid(bad), bad
    with pytest.raises(Exception, match="not a valid UID"):
        validate_uid("1.2.x", "Study Instance UID")
