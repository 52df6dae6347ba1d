"""Value normal forms and the grammar of DA / TM / DT matching values (PS3.5 Table 6.2-1,
PS3.4 C.2.2.2.5)."""

from __future__ import annotations

import pytest

from storage.dicom.values import (
    MAX_INT64,
    Span,
    combine,
    fold,
    normalize_date,
    normalize_datetime,
    normalize_time,
    parse_integer,
    parse_span,
    phonetic_column,
    soundex,
    valid_date,
    valid_datetime,
    valid_time,
    words_column,
)


@pytest.mark.parametrize(
    "value,valid",
    [("20240229", True), ("20230229", False), ("20251345", False), ("abc", False),
     ("2025.01.02", True), ("2025-01-02", False), ("2025010", False), ("00010101", True)],
)  # fmt: skip
def test_dates(value: str, valid: bool) -> None:
    assert valid_date(value) is valid


@pytest.mark.parametrize(
    "value,valid",
    [("23", True), ("24", False), ("2359", True), ("2360", False), ("235960", True),
     ("235961", False), ("101010.123456", True), ("101010.1234567", False), ("10:30", True),
     ("10:30:15.5", True), ("1", False), ("", False)],
)  # fmt: skip
def test_times(value: str, valid: bool) -> None:
    assert valid_time(value) is valid


@pytest.mark.parametrize(
    "value,valid",
    [("2020", True), ("202013", False), ("20200230", False), ("2020010112", True),
     ("20200101250000", False), ("20200101120000.5+0100", True), ("20200101+1400", True),
     ("20200101+1401", False), ("20200101-1200", True), ("20200101-1300", False),
     ("20200101+0160", False)],
)  # fmt: skip
def test_datetimes(value: str, valid: bool) -> None:
    assert valid_datetime(value) is valid


def test_spans() -> None:
    assert parse_span("20200101", "DA") == Span("20200101", "20200101", False)
    assert parse_span("20200101-", "DA") == Span("20200101", "", True)
    assert parse_span("-20200101", "DA") == Span("", "20200101", True)
    assert parse_span("2300-0100", "TM") == Span("2300", "0100", True)
    # A DT with a negative UTC offset is one value; two years are a range.
    assert parse_span("20200101120000-0500", "DT").is_range is False
    assert parse_span("2020-2021", "DT") == Span("2020", "2021", True)
    for bad, vr in (("-", "DA"), ("2025-13-45", "DA"), ("abc", "TM"), ("20201-", "DT")):
        with pytest.raises(ValueError, match="PS3.5"):
            parse_span(bad, vr)


def test_normal_forms() -> None:
    assert normalize_date("2020.12.31") == "20201231"
    assert normalize_time("10") == "100000.000000"
    assert normalize_time("10", upper=True) == "105959.999999"
    assert normalize_time("10:30:15.5") == "103015.500000"
    assert normalize_datetime("2020") == "20200101000000.000000"
    assert normalize_datetime("2020", upper=True) == "20201231235959.999999"
    # The offset is applied: 12:00 at +0100 is 11:00 UTC.
    assert normalize_datetime("20200101120000+0100") == "20200101110000.000000"
    assert combine("20201231", "2330") == "20201231233000.000000"
    assert combine("2020", "2330") == ""
    assert fold("MÜLLER^Jürgen") == "muller^jurgen"
    # NFKD: compatibility forms fold too (a ligature, full-width letters), and 'ß' is 'ss'.
    assert fold("ﬁscher^ＡＮＮＡ^Straße") == "fischer^anna^strasse"
    assert words_column("Müller^Jean-Luc") == " muller jean luc "


# -- hostile values: other scripts' digits, numbers beyond 64 bits, UTC offsets at the ends ---
ARABIC_INDIC = "".join(chr(0x0660 + int(d)) for d in "20250101")  # "٢٠٢٥٠١٠١"


@pytest.mark.parametrize(
    "value,vr",
    [(ARABIC_INDIC, "DA"), ("2025010\uff11", "DA"), ("\u0661\u0660", "TM"), ("10\u00b2", "TM"),
     (ARABIC_INDIC[:4], "DT"), ("20250101-abc", "DA"), ("-20250101x", "DA"), ("9" * 5000, "DT"),
     ("2020-" * 1000, "DT")],
)  # fmt: skip
def test_non_ascii_digits_and_junk_are_no_values(value: str, vr: str) -> None:
    """Before: '\\d' in the grammar took Arabic-Indic and full-width digits as numbers."""
    with pytest.raises(ValueError):
        parse_span(value, vr)


@pytest.mark.parametrize(
    "text,low,high,expected",
    [("42", 0, 100, 42), (" 7 ", 0, 100, 7), ("-5", -10, 10, -5), ("+5", -10, 10, 5),
     ("0009", 0, 10, 9)],
)  # fmt: skip
def test_integers(text: str, low: int, high: int, expected: int) -> None:
    assert parse_integer(text, low, high) == expected


@pytest.mark.parametrize(
    "text",
    ["\u00b2", "\u0663", "1_000", "0x10", "", "-1", "+1", "1e3", "9" * 20, "9" * 5000, str(2**63)],
)
def test_integers_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_integer(text, 0, MAX_INT64)


def test_a_utc_offset_past_the_calendars_ends_is_clamped() -> None:
    """Before: OverflowError (a 500) for the first moment minus 14 hours."""
    assert normalize_datetime("00010101000000+1400") == "00010101000000.000000"
    assert normalize_datetime("99991231235959-1200", upper=True) == "99991231235959.999999"


# -- fuzzy matching: American Soundex, of the accent-free letters --------------------------------
@pytest.mark.parametrize(
    "word,code",
    [
        # The reference examples of the US National Archives' Soundex rules.
        ("Robert", "R163"),
        ("Rupert", "R163"),
        ("Rubin", "R150"),
        ("Ashcraft", "A261"),
        ("Tymczak", "T522"),
        ("Pfister", "P236"),
        ("Honeyman", "H555"),
        # Spellings that sound alike, accents and case ignored.
        ("Müller", "M460"),
        ("MUELLER", "M460"),
        ("Meyer", "M600"),
        ("Meier", "M600"),
        ("Schmidt", "S530"),
        ("Smyth", "S530"),
        ("Seán", "S500"),
        ("Li", "L000"),
        # Nothing to code: no Latin letters.
        ("山田", ""),
        ("1234", ""),
        ("", ""),
    ],
)
def test_soundex(word: str, code: str) -> None:
    assert soundex(word) == code


def test_phonetic_column_holds_each_words_code_once_between_spaces() -> None:
    assert phonetic_column("Müller^Jean-Luc") == " M460 J500 L200 "
    assert phonetic_column("Meyer^Meier") == " M600 "
    assert phonetic_column("山田^太郎") == ""
