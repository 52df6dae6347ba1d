"""Tiers in process: a move keeps every byte and leaves the blob in the target store only, a
read from a tier that needs a recall asks for one, completing it serves the bytes again, and
the report adds up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage.audit import AuditQuery, Operation
from storage.errors import RecallPending
from storage.verify import Bounds
from tests.inprocess import TESTER, multiframe, open_at, store

NO_BOUNDS = Bounds(0.0, 0.0)


def tiers(root: Path, recall_seconds: float = 0.0) -> str:
    return json.dumps(
        [
            {"name": "hot", "price_gb_month": 0.02},
            {"name": "cold", "location": str(root / "cold"), "price_gb_month": 0.004},
            {
                "name": "deep",
                "location": str(root / "deep"),
                "needs_recall": True,
                "recall_seconds": recall_seconds,
                "price_gb_month": 0.001,
                "price_gb_retrieved": 0.02,
            },
        ]
    )


def files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix() for p in root.rglob("*.dcm") if ".staging" not in p.parts
    }


def test_without_tiers_the_blob_store_is_read_directly(tmp_path) -> None:
    archive, _ = open_at(tmp_path / "a")
    stored = store(archive, multiframe(2))
    report = archive.tier_report(who=TESTER)
    assert [(r.name, r.instances, r.bytes) for r in report] == [("hot", 1, stored.size)]
    assert archive.apply_tiers(who=TESTER) == []
    assert archive._blobs.__class__.__name__ == "FilesystemBlobStore"


def test_rules_move_blobs_and_reads_follow(tmp_path) -> None:
    rules = json.dumps([{"tier": "cold", "modalities": ["OT"]}])
    archive, _ = open_at(tmp_path / "a", storage_tiers=tiers(tmp_path), tier_rules=rules)
    stored = store(archive, multiframe(3))
    record = archive.instance(stored.study, stored.series, stored.instance, who=TESTER)
    frames = [archive.frames(record).read(n) for n in (1, 2, 3)]
    whole = b"".join(archive.instance_stream(record, record.transfer_syntax).chunks)

    planned = archive.apply_tiers(dry_run=True, who=TESTER)
    assert [(m.source, m.target, m.done) for m in planned] == [("hot", "cold", False)]
    assert files(tmp_path / "cold") == set()
    done = archive.apply_tiers(who=TESTER)
    assert [(m.source, m.target, m.done) for m in done] == [("hot", "cold", True)]
    assert files(tmp_path / "a" / "blobs") == set()
    assert files(tmp_path / "cold") == {record.blob_key}

    moved = archive.instance(stored.study, stored.series, stored.instance, True, who=TESTER)
    assert moved.blob_key == "cold:" + record.blob_key
    assert [archive.frames(moved).read(n) for n in (1, 2, 3)] == frames
    assert b"".join(archive.instance_stream(moved, moved.transfer_syntax).chunks) == whole
    assert archive.apply_tiers(who=TESTER) == []  # already where the rules want it
    report = {r.name: r for r in archive.tier_report(who=TESTER)}
    assert (report["hot"].bytes, report["cold"].bytes) == (0, stored.size)
    assert report["cold"].monthly_cost == pytest.approx(stored.size / (1 << 30) * 0.004)
    assert archive.verify(NO_BOUNDS, who=TESTER).remaining == []
    events = archive.audit_events(AuditQuery(operation=Operation.TIER_MOVE), who=TESTER)
    assert [(e.study, e.detail) for e in events] == [
        (stored.study, "1 instances from tier hot to cold")
    ]


def test_a_read_from_a_recall_tier_asks_for_a_recall_which_brings_it_back(tmp_path) -> None:
    rules = json.dumps([{"tier": "deep"}])
    archive, _ = open_at(tmp_path / "a", storage_tiers=tiers(tmp_path, 3600), tier_rules=rules)
    stored = store(archive, multiframe(2))
    record = archive.instance(stored.study, stored.series, stored.instance, who=TESTER)
    first = archive.frames(record).read(1)
    assert [m.done for m in archive.apply_tiers(who=TESTER)] == [True]
    deep = archive.instance(stored.study, stored.series, stored.instance, True, who=TESTER)
    with pytest.raises(RecallPending) as caught:
        archive.frames(deep).read(1)
    assert 3500 <= caught.value.retry_after <= 3600
    assert "recall has been started" in caught.value.reason
    assert archive.complete_recalls(who=TESTER) == []  # not done before recall_seconds
    assert archive.document(deep)  # metadata needs no blob
    # Verify reads no bytes of a blob that needs a recall, and asks for none.
    assert archive.verify(NO_BOUNDS, who=TESTER).remaining == []

    later = archive._tiers.complete(TESTER, now=_after(hours=2))
    assert [(m.source, m.target, m.done) for m in later] == [("deep", "hot", True)]
    back = archive.instance(stored.study, stored.series, stored.instance, True, who=TESTER)
    assert back.blob_key == record.blob_key and archive.frames(back).read(1) == first
    assert files(tmp_path / "deep") == set()
    operations = [e.operation for e in archive.audit_events(AuditQuery(), who=TESTER)]
    assert operations.count(Operation.RECALL) == 2  # asked for, then done
    # The study was just read: an idle rule would not send it back, an age rule would.
    assert archive.apply_tiers(dry_run=True, who=TESTER)[0].target == "deep"


def test_recall_command_asks_for_every_instance_of_a_study(tmp_path) -> None:
    rules = json.dumps([{"tier": "deep"}])
    archive, _ = open_at(tmp_path / "a", storage_tiers=tiers(tmp_path), tier_rules=rules)
    stored = store(archive, multiframe(2))
    archive.apply_tiers(who=TESTER)
    assert archive.recall(stored.study, who=TESTER) == 1
    assert archive.recall(stored.study, who=TESTER) == 0  # asked for already
    assert [m.done for m in archive.complete_recalls(who=TESTER)] == [True]  # 0 s recall


def _after(hours: float):
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=hours)
