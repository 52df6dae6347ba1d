"""The levels of the DICOM information model (PS3.4 C.6: patient, study, series, instance)."""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    """A level of the Patient Root hierarchy, in order from the top."""

    PATIENT = "patient"
    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"

    @property
    def depth(self) -> int:
        """0 for PATIENT down to 3 for INSTANCE."""
        return _ORDER.index(self)

    def above(self) -> tuple[Level, ...]:
        """The levels above this one, from the top."""
        return _ORDER[: self.depth]

    def down_to(self) -> tuple[Level, ...]:
        """This level and every level above it, from the top."""
        return _ORDER[: self.depth + 1]


_ORDER = (Level.PATIENT, Level.STUDY, Level.SERIES, Level.INSTANCE)
