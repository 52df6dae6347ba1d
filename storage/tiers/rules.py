"""Which tier the rules want an instance in: the first rule whose conditions all hold."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from storage.index.tiers import Placed
from storage.tiers.config import Rule


def acquired(placed: Placed) -> datetime | None:
    """When the instance was acquired: its AcquisitionDateTime, else its study's StudyDate,
    else when it was stored."""
    for text, width in ((placed.acquired, 14), (placed.study_date, 8)):
        digits = text[:width]
        if len(digits) >= 8 and digits.isdigit():
            try:
                return datetime.strptime(digits[:8] + digits[8:14].ljust(6, "0"), "%Y%m%d%H%M%S")
            except ValueError:
                continue
    return placed.stored_at


def last_read(placed: Placed) -> datetime | None:
    """When the study was last read; never read counts from when the instance was stored."""
    return placed.last_accessed_at or placed.stored_at


def holds(rule: Rule, placed: Placed, now: datetime) -> bool:
    """Whether every condition of *rule* holds for *placed* at *now* (UTC, naive)."""
    if rule.modalities and placed.modality.upper() not in rule.modalities:
        return False
    for days, since in ((rule.after_days, acquired(placed)), (rule.idle_days, last_read(placed))):
        if days is None:
            continue
        if since is None or now - since < timedelta(days=days):
            return False
    return True


def wanted(rules: Sequence[Rule], placed: Placed, now: datetime) -> str | None:
    """The tier the first rule that holds names; None when none holds (it stays)."""
    return next((rule.tier for rule in rules if holds(rule, placed, now)), None)
