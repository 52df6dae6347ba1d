"""Value normal forms searching needs (folded and fuzzy person names, padded dates and times,
combined date-times) and the grammar of DA / TM / DT matching values (PS3.5 Table 6.2-1,
PS3.4 C.2.2.2.5)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SOUNDEX_GROUPS = ("bfpv", "cgjkqsxz", "dt", "l", "mn", "r")
_MIN_TIME, _MAX_TIME = "000000.000000", "235959.999999"


def fold(text: str) -> str:
    """Case- and accent-insensitive form for literal PN matching (PS3.4 C.2.2.2.1 lets PN
    matching be insensitive to case and accents): 'MÜLLER^Jürgen' → 'muller^jurgen'."""
    return strip_accents(text).casefold()


def strip_accents(text: str) -> str:
    """*text* decomposed (NFKD) without its combining marks: 'Seán' → 'Sean'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def name_words(name: str) -> list[str]:
    """The words of a person name, case- and accent-free ('Müller^Jean-Luc' → müller → ...)."""
    return _WORD.findall(strip_accents(name).casefold())


def words_column(name: str) -> str:
    """The stored fuzzy form: every word between spaces, so ' word' prefixes are searchable."""
    found = name_words(name)
    return f" {' '.join(found)} " if found else ""


# American Soundex: the digit of each consonant; vowels, 'h', 'w' and 'y' have none.
_SOUNDEX = {c: str(d) for d, group in enumerate(_SOUNDEX_GROUPS, 1) for c in group}


def soundex(word: str) -> str:
    """The American Soundex code of a word ('Meyer' and 'Meier' → 'M600'), of its ASCII
    letters once accents are stripped; '' for a word without any (e.g. ideographic)."""
    letters = [c for c in strip_accents(word).lower() if "a" <= c <= "z"]
    if not letters:
        return ""
    code, last = letters[0].upper(), _SOUNDEX.get(letters[0], "")
    for c in letters[1:]:
        digit = _SOUNDEX.get(c, "")
        if digit and digit != last:
            code += digit
        if c not in "hw":  # 'h' and 'w' do not separate two consonants of the same digit
            last = digit
    return (code + "000")[:4]


def phonetic_column(name: str) -> str:
    """The stored phonetic form: the Soundex code of every word between spaces."""
    codes = [code for code in dict.fromkeys(soundex(w) for w in name_words(name)) if code]
    return f" {' '.join(codes)} " if codes else ""


def normalize_date(value: str) -> str:
    """DA as YYYYMMDD (the ACR-NEMA form YYYY.MM.DD is accepted)."""
    return value.replace(".", "").replace("-", "").strip()[:8]


def normalize_time(value: str, upper: bool = False) -> str:
    """TM as HHMMSS.FFFFFF; missing parts are the lowest (or with *upper* the highest) value,
    so a partial time stands for the whole span it names (10 → 10:00:00 to 10:59:59.999999)."""
    text = value.replace(":", "").strip()
    if not text:
        return ""
    whole, _, fraction = text.partition(".")
    digits = re.sub(r"[^0-9]", "", whole)[:6]
    fraction = re.sub(r"[^0-9]", "", fraction)[:6]
    template = _MAX_TIME if upper else _MIN_TIME
    if len(digits) < 6:
        return digits + template[len(digits) :]
    filler = "9" if upper else "0"
    return f"{digits}.{fraction.ljust(6, filler)}"


def normalize_datetime(value: str, upper: bool = False) -> str:
    """DT as YYYYMMDDHHMMSS.FFFFFF; a UTC offset (&ZZXX) in the value is applied, giving UTC
    (PS3.4 C.2.2.2.5: "The offset ... shall be taken into account"); a value without one is
    compared as it is."""
    text = value.strip()
    if not text:
        return ""
    offset = None
    match = re.search(r"([+\-])([0-9]{2})([0-9]{2})$", text)
    if match and len(text) - 5 >= 10:  # an offset needs at least YYYYMMDDHH before it
        sign = 1 if match.group(1) == "+" else -1
        offset = sign * (int(match.group(2)) * 60 + int(match.group(3)))
        text = text[: match.start()]
    whole, _, fraction = text.partition(".")
    date_part, time_part = whole[:8], whole[8:]
    if len(date_part) < 8:
        lowest, highest = "00010101", "99991231"
        date_part = date_part + (highest if upper else lowest)[len(date_part) :]
        time_part = ""
    time = normalize_time(time_part + (f".{fraction}" if fraction else ""), upper)
    result = date_part + (time or (_MAX_TIME if upper else _MIN_TIME))
    if offset:
        try:
            moment = datetime.strptime(result, "%Y%m%d%H%M%S.%f") - timedelta(minutes=offset)
        except ValueError:
            return result
        except OverflowError:  # before 0001-01-01 or after 9999-12-31 in UTC: the limit
            return ("00010101" + _MIN_TIME) if offset > 0 else ("99991231" + _MAX_TIME)
        result = moment.strftime("%Y%m%d%H%M%S.%f")
    return result


def combine(date: str, time: str) -> str:
    """StudyDate + StudyTime as one DT-like value for combined range matching."""
    date = normalize_date(date)
    if len(date) != 8:
        return ""
    return date + (normalize_time(time) or _MIN_TIME)


# -- the grammar of matching values ------------------------------------------------------------
# ASCII digits only: Python's \d, str.isdigit() and int() also take '²' and other scripts'
# digits, which PS3.5 Table 6.2-1 does not (its character repertoire is the Default one).
_DA = re.compile(
    r"([0-9]{4})([0-9]{2})([0-9]{2})|([0-9]{4})\.([0-9]{2})\.([0-9]{2})"
)  # YYYY.MM.DD too
_TM = re.compile(  # HH:MM:SS of ACR-NEMA too
    r"([0-9]{2})(?::?([0-9]{2})(?::?([0-9]{2})(?:\.([0-9]{1,6}))?)?)?"
)
_DT = re.compile(
    r"([0-9]{4})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})"
    r"(?:\.([0-9]{1,6}))?)?)?)?)?)?(?:([+-])([0-9]{2})([0-9]{2}))?"
)
_SIGNED, _UNSIGNED = re.compile(r"[+-]?[0-9]+"), re.compile(r"[0-9]+")
MAX_INT64 = 2**63 - 1  # the largest integer SQLite and PostgreSQL (BIGINT) hold
# IS (PS3.5 Table 6.2-1): -2^31 .. 2^31-1; US: 0 .. 2^16-1; SS: -2^15 .. 2^15-1.
INTEGER_RANGES = {"IS": (-(2**31), 2**31 - 1), "US": (0, 2**16 - 1), "SS": (-(2**15), 2**15 - 1)}


def parse_integer(text: str, low: int = 0, high: int = MAX_INT64) -> int:
    """A decimal integer of ASCII digits between *low* and *high* (a sign only when *low* is
    negative, as for IS); ValueError saying what is wrong. Never calls int() on a string
    longer than the bounds need (Python refuses 4,300 digits, the index holds 64 bits)."""
    text = text.strip(" ")
    if (_SIGNED if low < 0 else _UNSIGNED).fullmatch(text) is None:
        raise ValueError(f"{text[:40]!r} is not an integer of ASCII digits")
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > len(str(max(abs(low), abs(high)))):
        raise ValueError(f"{text[:40]!r} is out of range ({low} to {high})")
    number = int(text)
    if not low <= number <= high:
        raise ValueError(f"{text[:40]!r} is out of range ({low} to {high})")
    return number


def valid_date(value: str) -> bool:
    """DA: YYYYMMDD naming a day of the calendar."""
    match = _DA.fullmatch(value)
    if match is None:
        return False
    year, month, day = (int(g) for g in match.groups() if g is not None)
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def valid_time(value: str) -> bool:
    """TM: HH[MM[SS[.F{1-6}]]], hours 00-23, minutes 00-59, seconds 00-60 (leap second)."""
    match = _TM.fullmatch(value)
    if match is None:
        return False
    hours, minutes, seconds, _ = match.groups()
    return int(hours) <= 23 and int(minutes or 0) <= 59 and int(seconds or 0) <= 60


def valid_datetime(value: str) -> bool:
    """DT: YYYY[MM[DD[HH[MM[SS[.F{1-6}]]]]]][&ZZXX], each part in its range, the UTC offset
    between -1200 and +1400."""
    match = _DT.fullmatch(value)
    if match is None:
        return False
    year, month, day, hours, minutes, seconds, _, sign, zz, xx = match.groups()
    try:
        date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return False
    if int(hours or 0) > 23 or int(minutes or 0) > 59 or int(seconds or 0) > 60:
        return False
    if sign is not None:
        offset = int(zz) * 60 + int(xx)
        if int(xx) > 59 or offset > (14 * 60 if sign == "+" else 12 * 60):
            return False
    return True


MAX_SPAN = 64  # two DT values of 26 characters and a '-', with room for blanks
VALIDATORS = {"DA": valid_date, "TM": valid_time, "DT": valid_datetime}
FORMS = {"DA": "YYYYMMDD", "TM": "HHMMSS.FFFFFF", "DT": "YYYYMMDDHHMMSS.FFFFFF&ZZXX"}


@dataclass(frozen=True)
class Span:
    """A DA / TM / DT matching value: one value, or a range with either end open ('')."""

    low: str
    high: str
    is_range: bool


def parse_span(value: str, vr: str) -> Span:
    """Read ``v``, ``a-b``, ``-b`` or ``a-`` (PS3.4 C.2.2.2.5); ValueError says what is wrong.

    A DT may itself hold '-' (a UTC offset such as -0500): a single valid value is preferred,
    then the split at a '-' that leaves every given end valid (``2020-2021``: two years)."""
    valid = VALIDATORS[vr]
    if len(value) > MAX_SPAN:
        raise ValueError(f"{value[:40]!r}... is longer than any {vr} value or range")
    if valid(value):
        return Span(value, value, False)
    for position in [i for i, char in enumerate(value) if char == "-"]:
        low, high = value[:position], value[position + 1 :]
        if (low or high) and (not low or valid(low)) and (not high or valid(high)):
            return Span(low, high, True)
    raise ValueError(
        f"{value!r} is not a {vr} value or range ({FORMS[vr]}, a-b, -b or a-; PS3.5 Table 6.2-1)"
    )
