"""A search as SQL: the primary keys of every match, joined down the ladder only as far as
the matching keys need."""

from __future__ import annotations

from sqlalchemy import select

from storage.access import Principal
from storage.dicom.levels import Level
from storage.index.ladder import KEYS, AnySelect, ladder
from storage.index.models import Instance
from storage.query.keys import Kind, by_keyword
from storage.query.matching import match_combined_datetime, match_empty, matcher, values
from storage.query.search import Filter, Search

_STUDY_DATE, _STUDY_TIME = by_keyword("StudyDate"), by_keyword("StudyTime")


def matched(search: Search, who: Principal | None = None) -> AnySelect:
    """The primary keys (at the search's level) of every match *who* may see, unordered and
    unpaged."""
    levels = search.matching_levels()
    query = ladder(select(KEYS[search.level]), search.level, levels, who)
    filters: list[Filter] = list(search.filters)
    given = {f.attribute.keyword: f.value for f in filters}
    if given.get("StudyDate") and given.get("StudyTime"):
        query = match_combined_datetime(
            query, _STUDY_DATE, given["StudyDate"], _STUDY_TIME, given["StudyTime"]
        )
        filters = [f for f in filters if f.attribute.keyword not in ("StudyDate", "StudyTime")]
    for item in filters:
        attribute, value = item.attribute, item.value
        if search.empty_value_matching and value == '""':
            query = match_empty(query, attribute, value)
            continue
        if (
            search.multiple_value_matching
            and len(values(value)) > 1
            and attribute.kind in (Kind.TEXT, Kind.COMPUTED)
        ):
            # C.2.2.2.8: every value must match (for a single-valued attribute: never).
            for one in values(value):
                query = matcher(attribute, one, search.fuzzy)(query, attribute, one)
            continue
        query = matcher(attribute, value, search.fuzzy)(query, attribute, value)
    if search.missing_specimen_facts:
        query = query.where(Instance.missing_specimen_facts != "")
    joined = levels | ({Level.STUDY} if who is not None and not who.unrestricted else set())
    if search.level != Level.INSTANCE and max(level.depth for level in joined) > search.level.depth:
        query = query.distinct()
    return query


def statement(search: Search, limit: int | None, who: Principal | None = None) -> AnySelect:
    """The matches in a stable order, from the search's offset, at most *limit* of them."""
    query = matched(search, who).order_by(KEYS[search.level])
    if search.offset:
        query = query.offset(search.offset)
    if limit is not None:
        query = query.limit(limit)
    return query
