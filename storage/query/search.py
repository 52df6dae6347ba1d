"""A search of the index, as QIDO-RS and C-FIND ask for it: the level, the matching keys,
what to return, and a page of results."""

from __future__ import annotations

from dataclasses import dataclass, field

from storage.dicom.levels import Level
from storage.query.keys import Attribute

# The QIDO-RS parameter of Search.missing_specimen_facts: this archive's own, no PS3.18 one.
MISSING_SPECIMEN_FACTS = "missingspecimenfacts"


@dataclass(frozen=True)
class Filter:
    """One matching key: an attribute and the value it is matched against."""

    attribute: Attribute
    value: str


@dataclass
class Search:
    """One search: the level, its matching keys, what to return, and a page."""

    level: Level
    filters: list[Filter] = field(default_factory=list)
    include: list[Attribute] = field(default_factory=list)
    include_other: list[tuple[int, ...]] = field(default_factory=list)  # from documents
    include_all: bool = False
    # Levels whose attributes each result carries (PS3.18 §10.6.3: /series also carries the
    # study's, /studies/{s}/instances the series', /instances both).
    levels: set[Level] = field(default_factory=set)
    fuzzy: bool = False
    empty_value_matching: bool = False
    multiple_value_matching: bool = False
    # Only entities with a whole-slide image that lacks WG-26 specimen facts (an extension:
    # docs/conformance.md §5.5).
    missing_specimen_facts: bool = False
    limit: int | None = None
    offset: int = 0

    def where(self, attribute: Attribute, value: str) -> Search:
        """Add a matching key; returns the search."""
        self.filters.append(Filter(attribute, value))
        return self

    def matching_levels(self) -> set[Level]:
        """The level searched and every level a matching key belongs to."""
        levels = {f.attribute.level for f in self.filters} | {self.level}
        return levels | ({Level.INSTANCE} if self.missing_specimen_facts else set())
