"""Deleting studies, series and instances through the one door: rows first, then blobs; the
access rules; the change feed written with each change; orphans left by a crash in between."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydicom.uid import generate_uid

from storage.access import Principal, PrincipalKind, Scope
from storage.errors import BlobMissing, Forbidden, InvalidUID, NotFound
from storage.records import Action, FeedWindow, State
from storage.verify import Bounds, Problem
from tests.inprocess import TESTER, multiframe, open_at, store


def _series_of_three(archive, study: str | None = None):  # type: ignore[no-untyped-def]
    study = study or generate_uid()
    series = generate_uid()
    stored = []
    for seed in range(3):
        dataset = multiframe(2, rows=8, columns=8, seed=seed)
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study, series
        stored.append(store(archive, dataset))
    return stored


def _blob_paths(archive, records):  # type: ignore[no-untyped-def]
    return [archive._blobs.path(record.blob_key) for record in records]


def test_delete_levels_remove_rows_then_blobs(empty_archive) -> None:
    archive = empty_archive
    first = _series_of_three(archive)
    study = first[0].study
    second = _series_of_three(archive, study)
    records = archive.records(study, who=TESTER)
    paths = _blob_paths(archive, records)
    assert all(path.exists() for path in paths)

    assert archive.delete(study, first[0].series, first[0].instance, who=TESTER) == 1
    assert not paths[0].exists()
    assert len(archive.records(study, who=TESTER)) == 5
    assert archive.delete(study, first[0].series, who=TESTER) == 2
    with pytest.raises(NotFound):
        archive.records(study, first[0].series, who=TESTER)
    assert archive.delete(study, who=TESTER) == 3
    assert not any(path.exists() for path in paths)
    with pytest.raises(NotFound):
        archive.records(study, who=TESTER)
    # Again: nothing is stored any more, so NotFound (the front door's 404).
    last = second[0]
    for args in ((study,), (study, last.series), (study, last.series, last.instance)):
        with pytest.raises(NotFound):
            archive.delete(*args, who=TESTER)

    feed = archive.change_feed(FeedWindow(limit=200), who=TESTER)
    assert [change.sequence for change in feed] == list(range(1, 13))
    assert [change.action for change in feed] == [Action.CREATE] * 6 + [Action.DELETE] * 6
    assert {change.state for change in feed} == {State.DELETED}
    deleted = [change.instance for change in feed[6:]]
    assert sorted(deleted) == sorted(s.instance for s in first + second)
    assert archive.latest_change(who=TESTER) == feed[-1]
    times = [change.at for change in feed]
    assert times == sorted(times)


def test_delete_needs_the_scope_and_obeys_the_groups(tmp_path) -> None:
    archive, _ = open_at(tmp_path, access_group_attribute="InstitutionName")
    dataset = multiframe(1)
    dataset.InstitutionName = "LEEDS"
    stored = store(archive, dataset)
    reader = Principal("r", PrincipalKind.TOKEN, frozenset({Scope.READ}))
    with pytest.raises(Forbidden):
        archive.delete(stored.study, who=reader)
    deleter = frozenset({Scope.DELETE})
    other = Principal("y", PrincipalKind.TOKEN, deleter, groups=frozenset({"YORK"}))
    with pytest.raises(NotFound):  # as if it were not stored
        archive.delete(stored.study, who=other)
    with pytest.raises(InvalidUID):
        archive.delete("1.2.x", who=TESTER)
    leeds = Principal("l", PrincipalKind.TOKEN, deleter, groups=frozenset({"LEEDS"}))
    assert archive.delete(stored.study, who=leeds) == 1
    # The feed names every group's studies: a restricted identity may not read it.
    with pytest.raises(Forbidden):
        archive.change_feed(
            FeedWindow(),
            who=Principal(
                "l", PrincipalKind.TOKEN, frozenset({Scope.READ}), groups=frozenset({"LEEDS"})
            ),
        )
    archive.close()


def test_overwrite_is_an_update_and_replaces_the_earlier_event(tmp_path) -> None:
    archive, _ = open_at(tmp_path, duplicate_policy="overwrite")
    dataset = multiframe(2)
    first = store(archive, dataset)
    store(archive, dataset)
    feed = archive.change_feed(FeedWindow(), who=TESTER)
    assert [(c.action, c.state) for c in feed] == [
        (Action.CREATE, State.REPLACED),
        (Action.UPDATE, State.CURRENT),
    ]
    documents = archive.change_documents(feed)
    assert documents[first.instance]["00080018"]["Value"] == [first.instance]
    archive.delete(first.study, who=TESTER)
    feed = archive.change_feed(FeedWindow(), who=TESTER)
    assert [c.state for c in feed] == [State.DELETED] * 3
    assert archive.change_documents(feed) == {}
    archive.close()


def test_feed_windows_by_time_and_offset(empty_archive) -> None:
    archive = empty_archive
    stored = _series_of_three(archive) + _series_of_three(archive)
    feed = archive.change_feed(FeedWindow(), who=TESTER)
    assert [c.instance for c in feed] == [s.instance for s in stored]
    assert archive.change_feed(FeedWindow(offset=4, limit=1), who=TESTER) == feed[4:5]
    start = feed[2].at
    later = archive.change_feed(FeedWindow(start=start, offset=1, limit=2), who=TESTER)
    assert later == [c for c in feed if c.at >= start][1:3]
    assert archive.change_feed(FeedWindow(end=feed[0].at), who=TESTER) == []
    after = feed[-1].at + timedelta(seconds=1)
    assert archive.change_feed(FeedWindow(start=after), who=TESTER) == []


def test_a_crash_between_rows_and_blobs_leaves_orphans_verify_finds(empty_archive) -> None:
    archive = empty_archive
    stored = _series_of_three(archive)
    records = archive.records(stored[0].study, who=TESTER)
    # The first step of Archive.delete only, as when the process dies right after the commit.
    keys = archive._writer.delete_matching(stored[0].study)
    assert sorted(keys) == sorted(record.blob_key for record in records)
    report = archive.verify(Bounds(0, 1800), who=TESTER)
    orphans = {f.key for f in report.findings if f.problem is Problem.ORPHAN_BLOB}
    assert orphans == set(keys)
    repaired = archive.verify(Bounds(0, 1800), repair=True, who=TESTER)
    assert all(f.repaired for f in repaired.findings)
    assert archive.verify(Bounds(0, 1800), who=TESTER).findings == []


def test_a_reader_holding_a_record_fails_cleanly_after_the_delete(empty_archive) -> None:
    archive = empty_archive
    stored = _series_of_three(archive)[0]
    record = archive.instance(stored.study, stored.series, stored.instance, who=TESTER)
    chunks = archive.instance_stream(record, record.transfer_syntax).chunks
    with archive._blobs.open(record.blob_key) as opened:  # a reader that has the file open
        archive.delete(stored.study, who=TESTER)
        assert len(opened.read()) == record.size  # finishes (POSIX keeps an open file)
    with pytest.raises(BlobMissing):
        archive.frames(record).read(1)
    with pytest.raises(BlobMissing):
        next(chunks)
    with pytest.raises(NotFound):
        archive.instance(stored.study, stored.series, stored.instance, fresh=True, who=TESTER)
