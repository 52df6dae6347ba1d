"""The C-MOVE retrieve's reading of the peer's responses (dimse.moving.outcome): the counts,
the final status, and what counts as a failure (PS3.4 C.4.2.1.5); and the retrieve command's
checks before any association."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dimse.moving import outcome
from storage.errors import InvalidUID
from tests.inprocess import TESTER, open_at
from wsiarchive.forwarding.commands import address_of
from wsiarchive.forwarding.config import Destination, Kind
from wsiarchive.forwarding.retrieve import Move, retrieve


def _response(status: int, comment: str = "", **counts: int) -> Dataset:
    response = Dataset()
    response.Status = status
    for name, value in counts.items():
        setattr(response, f"NumberOf{name.capitalize()}Suboperations", value)
    if comment:
        response.ErrorComment = comment
    return response


def test_the_final_response_gives_the_status_and_counts() -> None:
    responses = [
        _response(0xFF00, remaining=2, completed=0, failed=0, warning=0),
        _response(0xFF00, remaining=1, completed=1, failed=0, warning=0),
        _response(0x0000, completed=2, failed=0, warning=0),
    ]
    moved = outcome("DEST", responses)
    assert (moved.status, moved.completed, moved.failed, moved.warning) == (0, 2, 0, 0)
    assert moved.problem() == ""
    assert moved.summary() == "C-MOVE to DEST: 2 completed, 0 failed, 0 warning"


def test_a_count_the_final_response_leaves_out_is_the_last_pending_ones() -> None:
    responses = [_response(0xFF00, remaining=0, completed=3, failed=0, warning=1), _response(0)]
    moved = outcome("DEST", responses)
    assert (moved.completed, moved.warning) == (3, 1)
    assert moved.problem() == ""  # warnings alone: the instances are stored


@pytest.mark.parametrize(
    ("final", "problem"),
    [
        (
            _response(0xA801),
            "C-MOVE status A801 (Move destination unknown): the peer does not know the AE "
            "title DEST",
        ),
        (
            _response(0xC000, "no such study"),
            "C-MOVE status C000 (Unable to Process): no such study",
        ),
        (
            _response(0xA702, completed=1, failed=2, warning=0),
            "C-MOVE status A702 (Refused: Out of resources, unable to perform sub-operations)",
        ),
        (_response(0xFE00, completed=1), "C-MOVE status FE00 (cancelled)"),
        (
            _response(0xB000, completed=1, failed=2, warning=0),
            "2 of the C-STORE sub-operations to DEST failed",
        ),
        (
            _response(0x0000, completed=1, failed=1, warning=0),
            "1 of the C-STORE sub-operations to DEST failed",
        ),
    ],
)
def test_what_counts_as_a_failure(final: Dataset, problem: str) -> None:
    assert outcome("DEST", [final]).problem() == problem


def test_no_final_response_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="aborted or timed out"):
        outcome("DEST", [_response(0xFF00, remaining=1), Dataset()])
    with pytest.raises(RuntimeError, match="without a final response"):
        outcome("DEST", [_response(0xFF00, remaining=1)])


def test_receive_on_is_host_and_port() -> None:
    assert address_of("11113", "127.0.0.1") == ("127.0.0.1", 11113)
    assert address_of("0.0.0.0:104", "127.0.0.1") == ("0.0.0.0", 104)
    assert address_of(None, "127.0.0.1") is None
    for wrong in ("x", "host:", "70000", "0"):
        with pytest.raises(ValueError, match="is not \\[HOST:\\]PORT"):
            address_of(wrong, "127.0.0.1")


def test_a_study_uid_is_checked_before_any_association(tmp_path: Path) -> None:
    archive, _ = open_at(tmp_path)
    # Port 1: nothing listens; a check after an association attempt would say so instead.
    peer = Destination("peer", Kind.DIMSE, ae_title="PEER", host="127.0.0.1", port=1)
    web = Destination("web", Kind.DICOMWEB, url="http://127.0.0.1:1/dicomweb")
    try:
        for move in (None, Move("DEST"), Move("DEST", ("127.0.0.1", 1))):
            with pytest.raises(InvalidUID, match="Study Instance UID"):
                retrieve(archive, peer, "1.2.3\\*", TESTER, "US", move)
        with pytest.raises(InvalidUID):
            retrieve(archive, web, "../1.2", TESTER)
        with pytest.raises(ValueError, match="no C-MOVE"):
            retrieve(archive, web, "1.2.3", TESTER, "US", Move("DEST"))
        with pytest.raises(RuntimeError, match="no association with PEER@127.0.0.1:1"):
            retrieve(archive, peer, "1.2.3", TESTER, "US", Move("DEST"))
    finally:
        archive.close()
