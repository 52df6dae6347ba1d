"""The one mapping of archive errors to HTTP (dicomweb.errors.STATUS): complete, within the
statuses PS3.18 allows, and what the front door really answers."""

from __future__ import annotations

import pytest

from dicomweb.errors import STATUS, SYNTAX_FAILURES, status_of
from storage.errors import ArchiveError, BlobMissing, NotFound
from tests.error_classes import archive_errors

# PS3.18 Table I.2-2 (A7xx, A9xx, Cxxx, C122, 0110, 0122) and the implementation-specific
# codes docs/conformance.md declares (0111 duplicate, 0124 not authorized).
FAILURE_REASONS = {0x0110, 0x0111, 0x0122, 0x0124, 0xC122}


@pytest.mark.parametrize("kind", archive_errors(), ids=lambda kind: kind.__name__)
def test_every_archive_error_has_its_own_entry(kind: type[ArchiveError]) -> None:
    assert kind in STATUS, f"{kind.__name__} is missing from dicomweb.errors.STATUS"
    entry = STATUS[kind]
    assert 400 <= entry.http <= 599
    reason = entry.failure_reason
    assert reason in FAILURE_REASONS or reason >> 8 in (0xA7, 0xA9) or reason >> 12 == 0xC


def test_the_table_names_no_other_class() -> None:
    assert set(STATUS) == set(archive_errors())


def test_a_subclass_outside_the_table_takes_its_nearest_ancestor() -> None:
    class Gone(BlobMissing):
        pass

    assert status_of(Gone("x")) == STATUS[BlobMissing]
    assert status_of(NotFound("x")).http == 404


def test_syntax_failures_are_the_unreadable_payloads() -> None:
    # Table 10.5.3-1: 400 only when nothing could be read at all.
    syntax = {
        kind.__name__ for kind, entry in STATUS.items() if entry.failure_reason in SYNTAX_FAILURES
    }
    assert {"InvalidInstance", "UnsupportedTransferSyntax", "InvalidUID"} <= syntax
    assert "DuplicateInstance" not in syntax and "OutOfResources" not in syntax


def test_the_front_door_answers_with_the_table(empty_web) -> None:
    archive, client = empty_web
    missing = client.get("/dicomweb/studies/1.2.3/metadata")
    assert missing.status_code == STATUS[NotFound].http == 404
    assert missing.json == {"status": 404, "error": "no stored study 1.2.3"}
    bad_uid = client.get("/dicomweb/studies/1.2.x/metadata")
    assert bad_uid.status_code == 400 and "not a valid UID" in bad_uid.json["error"]
    bad_value = client.get("/dicomweb/studies?StudyDate=abc")
    assert bad_value.status_code == 400 and "StudyDate" in bad_value.json["error"]
