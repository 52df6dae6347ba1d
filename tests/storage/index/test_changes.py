"""The change feed's cursors: one holder at a time, taken over once its lease runs out."""

from __future__ import annotations

import time

from tests.inprocess import multiframe, store


def test_one_holder_per_cursor_and_takeover(empty_archive) -> None:
    archive = empty_archive
    store(archive, multiframe(1))
    assert archive.lease_cursor("http://a/hook", "one", 30) == 1  # starts at the latest
    assert archive.lease_cursor("http://a/hook", "two", 30) is None
    assert not archive.advance_cursor("http://a/hook", "two", 1)
    store(archive, multiframe(1, seed=2))
    assert archive.lease_cursor("http://a/hook", "one", 0.05) == 1  # renewed, shorter
    assert archive.advance_cursor("http://a/hook", "one", 2)
    time.sleep(0.1)
    assert archive.lease_cursor("http://a/hook", "two", 30) == 2  # the lease ran out
    assert not archive.advance_cursor("http://a/hook", "one", 2)
    assert archive.lease_cursor("http://b/hook", "one", 30) == 2  # cursors are per name
