"""The PS3.4 C.2.2.2 matching types, one function each, extending a SQLAlchemy query (after
pynetdicom's qrscp): single value, UID list, wildcard, range, universal, sequence, empty
value, and fuzzy person names. Invalid values raise InvalidRequest (PS3.18 §8.3: 400)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_
from sqlalchemy.orm import aliased

from storage.dicom.uids import is_valid_uid
from storage.dicom.values import (
    INTEGER_RANGES,
    Span,
    fold,
    name_words,
    normalize_date,
    normalize_datetime,
    normalize_time,
    parse_integer,
    parse_span,
    soundex,
)
from storage.errors import InvalidRequest
from storage.index.ladder import AnySelect
from storage.index.models import Series, Study
from storage.query.keys import ITEM_TABLES, Attribute, Kind

Query = AnySelect
Matcher = Callable[[Query, Attribute, str], Query]
_RANGE_VR = {Kind.DATE: "DA", Kind.TIME: "TM", Kind.DATETIME: "DT"}


def values(value: str) -> list[str]:
    """The values of a list (QIDO separates them with ',', DIMSE with '\\')."""
    return [v for v in value.replace("\\", ",").split(",") if v != ""]


def listed(attribute: Attribute, value: str) -> list[str]:
    """The values of a list, or InvalidRequest when it names none (``,`` or ``\\``)."""
    found = values(value)
    if not found:
        raise InvalidRequest(f"{attribute.keyword}={value!r} is a list of no values")
    return found


def like_pattern(value: str) -> str:
    """DICOM wildcards to a LIKE pattern: '*' → '%', '?' → '_', literal '%', '_' escaped."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _text_condition(column: Any, value: str) -> ColumnElement[bool]:
    if "*" in value or "?" in value:
        condition: ColumnElement[bool] = column.like(like_pattern(value), escape="\\")
        return condition
    equal: ColumnElement[bool] = column == value
    return equal


def match_universal(query: Query, attribute: Attribute, value: str) -> Query:
    """C.2.2.2.3: an empty value matches everything (and asks for the attribute back)."""
    return query


def match_uid_list(query: Query, attribute: Attribute, value: str) -> Query:
    """C.2.2.2.2: any of a list of UIDs."""
    uids = [u.strip() for u in listed(attribute, value)]
    for uid in uids:
        if not is_valid_uid(uid):
            raise InvalidRequest(f"{attribute.keyword}={uid!r} is not a valid UID")
    column = attribute.column
    return query.where(column.in_(uids) if len(uids) > 1 else column == uids[0])


def match_text(query: Query, attribute: Attribute, value: str) -> Query:
    """C.2.2.2.1 / C.2.2.2.4: exact (case-sensitive) or wildcard; several values: any."""
    alternatives = listed(attribute, value) if attribute.vr == "CS" else [value]
    conditions = [_text_condition(attribute.column, v) for v in alternatives]
    return query.where(or_(*conditions) if len(conditions) > 1 else conditions[0])


def match_person_name(query: Query, attribute: Attribute, value: str) -> Query:
    """PN literal matching, insensitive to case and accents as C.2.2.2.1 allows for PN."""
    return query.where(_text_condition(attribute.folded, fold(value)))


def match_fuzzy_person_name(query: Query, attribute: Attribute, value: str) -> Query:
    """fuzzymatching=true (PS3.18 §8.3.4, PS3.4 C.2.2.2.1): case- and accent-insensitive;
    each word of the value is the start of some word of the name, or sounds like one (the
    same Soundex code): 'mul jea' and 'Mueler' find 'Müller^Jean-Luc'. '*' and '?' still
    work, on the words only."""
    plain = fold(value)
    if "*" in plain or "?" in plain:
        # Words and wildcards kept, separators made single spaces, as in the stored form.
        pattern = like_pattern(re.sub(r"[^\w*?]+", " ", plain).strip())
        if not pattern.startswith(("%", "_")):
            pattern = "% " + pattern
        if not pattern.endswith("%"):
            pattern += " %"
        return query.where(attribute.words.like(pattern, escape="\\"))
    words = name_words(plain)
    if not words:
        return query
    return query.where(and_(*[_fuzzy_word(attribute, word) for word in words]))


def _fuzzy_word(attribute: Attribute, word: str) -> ColumnElement[bool]:
    """Some word of the name starts with *word*, or has its Soundex code."""
    starts: ColumnElement[bool] = attribute.words.like(f"% {like_pattern(word)}%", escape="\\")
    code = soundex(word)
    if not code:
        return starts
    sounds: ColumnElement[bool] = attribute.phonetic.like(f"% {code} %")
    return or_(starts, sounds)


def span(attribute: Attribute, value: str) -> Span:
    """The DA / TM / DT value or range *value* gives, or InvalidRequest naming the key."""
    try:
        return parse_span(value, _RANGE_VR[attribute.kind])
    except ValueError as exc:
        raise InvalidRequest(f"{attribute.keyword}={exc}") from exc


def _bounds(attribute: Attribute, low: str, high: str) -> tuple[Any, str, str]:
    """The comparable column and normalised bounds of a DA / TM / DT range."""
    if attribute.kind == Kind.DATE:
        return attribute.column, normalize_date(low), normalize_date(high)
    if attribute.kind == Kind.TIME:
        return attribute.normalized, normalize_time(low), normalize_time(high, upper=True)
    return attribute.normalized, normalize_datetime(low), normalize_datetime(high, upper=True)


def match_range(query: Query, attribute: Attribute, value: str) -> Query:
    """C.2.2.2.5: ``a-b``, ``-b``, ``a-``; a single value matches the span it names
    (``2020`` for a DT is the whole year). A TM range whose start is after its end wraps
    around midnight (``2300-0100``)."""
    given = span(attribute, value)
    column, lower, upper = _bounds(attribute, given.low, given.high)
    if attribute.kind == Kind.DATE and not given.is_range:
        return query.where(column == lower)
    if attribute.kind == Kind.TIME and given.low and given.high and lower > upper:
        return query.where(column != "", or_(column >= lower, column <= upper))
    conditions: list[ColumnElement[bool]] = [column != ""]
    if given.low:
        conditions.append(column >= lower)
    if given.high:
        conditions.append(column <= upper)
    return query.where(and_(*conditions))


def match_combined_datetime(
    query: Query, date: Attribute, date_value: str, time: Attribute, time_value: str
) -> Query:
    """C.2.2.2.5.1: StudyDate and StudyTime given together match as one date-time range
    (``StudyDate=20201231-20210101&StudyTime=2300-0100`` spans one night)."""
    days, hours = span(date, date_value), span(time, time_value)
    conditions: list[ColumnElement[bool]] = [Study.study_datetime != ""]
    if days.low:
        start = normalize_date(days.low) + (normalize_time(hours.low) or "000000.000000")
        conditions.append(Study.study_datetime >= start)
    if days.high:
        end = normalize_date(days.high) + (
            normalize_time(hours.high, upper=True) or "235959.999999"
        )
        conditions.append(Study.study_datetime <= end)
    return query.where(and_(*conditions))


def match_number(query: Query, attribute: Attribute, value: str) -> Query:
    """Single value (or list) matching of IS / US values: ASCII digits within the VR's range
    (PS3.5 Table 6.2-1), so nothing reaches the index that it cannot compare."""
    low, high = INTEGER_RANGES.get(attribute.vr, INTEGER_RANGES["IS"])
    try:
        numbers = [parse_integer(v, low, high) for v in listed(attribute, value)]
    except ValueError as exc:
        raise InvalidRequest(f"{attribute.keyword}={exc}") from exc
    column = attribute.column
    return query.where(column.in_(numbers) if len(numbers) > 1 else column == numbers[0])


def match_item(query: Query, attribute: Attribute, value: str) -> Query:
    """C.2.2.2.6 sequence matching: some item of the sequence matches the value."""
    items = ITEM_TABLES[attribute.path[0]]
    return query.where(
        exists().where(items.foreign == items.owner, _text_condition(attribute.column, value))
    )


def match_modalities_in_study(query: Query, attribute: Attribute, value: str) -> Query:
    """ModalitiesInStudy: studies with a series of any listed modality. The series are an
    alias of their own, so the condition holds at every level, /series and /instances too
    (there the query's own Series would be correlated away, leaving the EXISTS no FROM)."""
    other = aliased(Series)
    conditions = [_text_condition(other.modality, m.strip()) for m in listed(attribute, value)]
    return query.where(exists().where(other.study_pk == Study.pk, or_(*conditions)))


def match_empty(query: Query, attribute: Attribute, value: str) -> Query:
    """C.2.2.2.7 (emptyvaluematching=true): '""' matches entities whose value is empty."""
    if attribute.kind == Kind.ITEM:
        items = ITEM_TABLES[attribute.path[0]]
        return query.where(~exists().where(items.foreign == items.owner, attribute.column != ""))
    if attribute.column is None:
        raise InvalidRequest(f"{attribute.keyword} cannot be matched against an empty value")
    column = attribute.column
    return query.where(or_(column.is_(None), column == ""))


_NO_WILDCARDS = (Kind.UID, Kind.DATE, Kind.TIME, Kind.DATETIME, Kind.NUMBER)
_BY_KIND: dict[Kind, Matcher] = {
    Kind.UID: match_uid_list,
    Kind.DATE: match_range,
    Kind.TIME: match_range,
    Kind.DATETIME: match_range,
    Kind.NUMBER: match_number,
    Kind.ITEM: match_item,
    Kind.TEXT: match_text,
}


def matcher(attribute: Attribute, value: str, fuzzy: bool) -> Matcher:
    """Choose the matching function for *value* of *attribute*."""
    if value == "" or value == "*":
        return match_universal
    if ("*" in value or "?" in value) and attribute.kind in _NO_WILDCARDS:
        # C.2.2.2.4: wildcards are for string VRs only.
        raise InvalidRequest(
            f"{attribute.keyword}={value!r}: wildcards are not allowed for VR {attribute.vr}"
        )
    if attribute.kind == Kind.COMPUTED:
        if attribute.keyword == "ModalitiesInStudy":
            return match_modalities_in_study
        raise InvalidRequest(f"{attribute.keyword} is computed and cannot be a matching key")
    if attribute.kind == Kind.PN:
        return match_fuzzy_person_name if fuzzy else match_person_name
    return _BY_KIND[attribute.kind]
