"""Which tier the rules want: age since acquisition, time since the last read, modality."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from storage.index.tiers import Placed
from storage.tiers.config import Rule, Tier, TierError, parse_rules, parse_tiers
from storage.tiers.rules import acquired, wanted

NOW = datetime(2026, 12, 2, 12, 0, 0)


def placed(
    modality: str = "SM",
    study_date: str = "",
    acquired_at: str = "",
    stored_days: float = 0,
    read_days: float | None = None,
) -> Placed:
    stored = NOW - timedelta(days=stored_days)
    read = None if read_days is None else NOW - timedelta(days=read_days)
    return Placed(
        1, "1.2", "1.2.3", "1.2.3.4", "1.2/1.2.3/1.2.3.4.dcm", "", 10, None,
        modality, study_date, acquired_at, stored, read, None,
    )  # fmt: skip


def test_acquisition_time_comes_from_acquisition_datetime_then_study_date_then_storing() -> None:
    assert acquired(placed(acquired_at="20240131235959.5", study_date="20200101")) == datetime(
        2024, 1, 31, 23, 59, 59
    )
    assert acquired(placed(study_date="20200101")) == datetime(2020, 1, 1)
    assert acquired(placed(study_date="2020", stored_days=3)) == NOW - timedelta(days=3)


def test_age_rule_holds_only_past_its_days() -> None:
    rules = [Rule("cold", after_days=365)]
    assert wanted(rules, placed(study_date="20251201"), NOW) == "cold"
    assert wanted(rules, placed(study_date="20260101"), NOW) is None


def test_idle_rule_counts_from_the_last_read_else_from_storing() -> None:
    rules = [Rule("cool", idle_days=30)]
    assert wanted(rules, placed(stored_days=40), NOW) == "cool"
    assert wanted(rules, placed(stored_days=40, read_days=2), NOW) is None
    assert wanted(rules, placed(stored_days=10), NOW) is None


def test_modality_and_order_decide() -> None:
    rules = [
        Rule("archive", after_days=3650),
        Rule("cold", after_days=30, modalities=frozenset({"SM"})),
        Rule("cool", after_days=30),
    ]
    old_sm = placed("SM", study_date="20250101")
    assert wanted(rules, old_sm, NOW) == "cold"
    assert wanted(rules, placed("CT", study_date="20250101"), NOW) == "cool"
    assert wanted(rules, placed("CT", study_date="20100101"), NOW) == "archive"
    assert wanted(rules, placed("CT", study_date="20261201"), NOW) is None


def test_settings_parse_and_refuse_what_cannot_work() -> None:
    assert parse_tiers("[]") == [Tier("hot")]
    tiers = parse_tiers(
        '[{"name":"hot"},{"name":"cold","location":"/x","price_gb_month":0.004},'
        '{"name":"deep","location":"/y","needs_recall":true,"recall_seconds":5}]'
    )
    assert [t.name for t in tiers] == ["hot", "cold", "deep"] and tiers[2].needs_recall
    rules = parse_rules('[{"tier":"cold","after_days":30,"modalities":["sm"]}]', tiers)
    assert rules == [Rule("cold", 30, None, frozenset({"SM"}))]
    for text in (
        '[{"name":"hot","location":"/elsewhere"}]',  # the first tier is the blob store
        '[{"name":"hot","needs_recall":true}]',
        '[{"name":"hot"},{"name":"hot"}]',
        '[{"name":"hot","price":1}]',
        '[{"name":"hot","price_gb_month":"cheap"}]',
        '[{"name":"a b"}]',
        '{"name":"hot"}',
    ):
        with pytest.raises(TierError):
            parse_tiers(text)
    for text in ('[{"tier":"warm"}]', '[{"tier":"cold","after_days":true}]'):
        with pytest.raises(TierError):
            parse_rules(text, tiers)
