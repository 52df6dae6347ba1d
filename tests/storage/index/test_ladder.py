"""The one join ladder: from any level, up or down, only the rungs a query needs, and only
stored instances wherever instances take part."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.dicom.levels import Level
from storage.index.ladder import KEYS, ladder


def tables(level: Level, levels: list[Level]) -> tuple[list[str], bool]:
    sql = str(ladder(select(KEYS[level]), level, levels).compile())
    order = [name for name in ("patient", "study", "series", "instance") if f" {name}" in sql]
    return order, "instance.status" in sql


@pytest.mark.parametrize(
    "level,levels,expected,stored",
    [
        (Level.STUDY, [], ["study"], False),
        (Level.STUDY, [Level.PATIENT], ["patient", "study"], False),
        (Level.STUDY, [Level.INSTANCE], ["study", "series", "instance"], True),
        (Level.INSTANCE, [], ["instance"], True),
        (Level.INSTANCE, [Level.PATIENT], ["patient", "study", "series", "instance"], True),
        (Level.SERIES, [Level.STUDY], ["study", "series"], False),
        (Level.PATIENT, [Level.SERIES], ["patient", "study", "series"], False),
    ],
)
def test_the_rungs_joined(level, levels, expected, stored) -> None:  # type: ignore[no-untyped-def]
    assert tables(level, levels) == (expected, stored)


def test_levels_are_ordered() -> None:
    assert [level.depth for level in Level] == [0, 1, 2, 3]
    assert Level.SERIES.down_to() == (Level.PATIENT, Level.STUDY, Level.SERIES)
    assert Level.SERIES.above() == (Level.PATIENT, Level.STUDY)
