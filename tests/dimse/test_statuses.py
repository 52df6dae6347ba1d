"""The one mapping of archive errors to DIMSE statuses (dimse.statuses.STATUS): complete,
within the statuses PS3.4 allows, and agreeing with STOW-RS where the codes are the same."""

from __future__ import annotations

import pytest
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS

from dicomweb.errors import STATUS as HTTP_STATUS
from dimse.statuses import STATUS, status_class
from storage.errors import ArchiveError
from tests.error_classes import archive_errors

# PS3.4 C.4.1.1.4 (C-FIND), C.4.2.1.5 (C-MOVE), C.4.3.1.4 (C-GET) failures, and PS3.7
# Annex C's general "Refused: Not Authorized"; A702 "Unable to perform sub-operations" is
# C-MOVE's and C-GET's only (a recall pending: no C-FIND needs a blob).
QUERY_FAILURES = {0xA700, 0xA702, 0xA900, 0x0124} | set(range(0xC000, 0xD000))


@pytest.mark.parametrize("kind", archive_errors(), ids=lambda kind: kind.__name__)
def test_every_archive_error_has_its_own_entry(kind: type[ArchiveError]) -> None:
    assert kind in STATUS, f"{kind.__name__} is missing from dimse.statuses.STATUS"
    entry = STATUS[kind]
    # pynetdicom's table of C-STORE statuses (PS3.4 B.2.3 and the general ones of PS3.7 C).
    assert STORAGE_SERVICE_CLASS_STATUS[entry.store][0] == "Failure"
    assert entry.query in QUERY_FAILURES


def test_c_store_agrees_with_stow_rs() -> None:
    """One decision per error: the C-STORE status is the STOW-RS Failure Reason, except
    where STOW names a case C-STORE cannot meet (a study mismatch needs a target study)."""
    differ = {
        kind.__name__
        for kind, entry in STATUS.items()
        if entry.store != HTTP_STATUS[kind].failure_reason
    }
    assert differ == {"StudyMismatch"}


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (0x0000, "success"),
        (0x0001, "warning"),
        (0xB007, "warning"),
        (0xFE00, "cancel"),
        (0xA700, "failure"),
        (0x0124, "failure"),
        (0xC000, "failure"),
        (0xFF00, None),  # pending: not a final status, not counted
        (0xFF01, None),
    ],
)
def test_status_classes_of_the_metrics(status: int, kind: str | None) -> None:
    assert status_class(status) == kind
