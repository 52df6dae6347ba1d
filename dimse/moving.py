"""Retrieving a study from a remote AE by C-MOVE (PS3.4 C.4.2, Study Root): the peer sends
the study's instances by C-STORE sub-operations to a move destination, either the archive's
own listener or a storage SCP started here for the duration of the move (``receiving``),
whose instances go through the C-GET retrieve's ingest (dimse.retrieving); the final
response's sub-operation counts say what the peer did."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.status import QR_MOVE_SERVICE_CLASS_STATUS
from pynetdicom.utils import set_ae

from dimse import patches
from dimse.identifiers import STUDY_ROOT_MOVE
from dimse.retrieving import Received, client_ae, ingest_received, study_query
from dimse.server import storage_classes
from dimse.statuses import SUCCESS, status_class
from storage import Archive
from storage.access import Principal

log = logging.getLogger(__name__)
DRAIN_SECONDS = 10.0  # how long the storage SCP waits for the peer to release after the move
# The sub-operation counts of a C-MOVE response (PS3.4 C.4.2.1.7 to C.4.2.1.9).
COUNTS = {
    "completed": "NumberOfCompletedSuboperations",
    "failed": "NumberOfFailedSuboperations",
    "warning": "NumberOfWarningSuboperations",
}
UNKNOWN_DESTINATION = 0xA801  # Refused: Move Destination unknown (PS3.4 C.4.2.1.5)


@dataclass
class Moved:
    """What a C-MOVE did, by its final response."""

    destination: str
    status: int = SUCCESS
    completed: int = 0
    failed: int = 0
    warning: int = 0
    comment: str = ""  # the final response's Error Comment

    def summary(self) -> str:
        return (
            f"C-MOVE to {self.destination}: {self.completed} completed, {self.failed} failed, "
            f"{self.warning} warning"
        )

    def problem(self) -> str:
        """Why the move failed, '' when it did not: a final Failure or Cancel status (PS3.4
        C.4.2.1.5), or failed sub-operations under a Success or Warning (B000) one.
        Warning sub-operations alone are not a failure: the instances are stored."""
        if status_class(self.status) in ("failure", "cancel"):
            meaning = QR_MOVE_SERVICE_CLASS_STATUS.get(self.status, ("", "unknown status"))[1]
            reason = f"C-MOVE status {self.status:04X} ({meaning or 'cancelled'})"
            if self.status == UNKNOWN_DESTINATION:
                reason += f": the peer does not know the AE title {self.destination}"
            return reason + (f": {self.comment}" if self.comment else "")
        if self.failed:
            return f"{self.failed} of the C-STORE sub-operations to {self.destination} failed"
        return ""


def outcome(destination: str, responses: Iterable[Dataset]) -> Moved:
    """The Moved of a C-MOVE's responses: the status of the final one, each count as the
    last response that carries it says (a final response may leave one out); RuntimeError
    when no final response came."""
    moved = Moved(destination)
    final = False
    for response in responses:
        code = getattr(response, "Status", None)
        if code is None:  # pynetdicom's empty status: aborted, or no answer in time
            raise RuntimeError("no C-MOVE response (association aborted or timed out)")
        for name, keyword in COUNTS.items():
            value = response.get(keyword)
            if value is not None and value != "":
                setattr(moved, name, int(value))
        if status_class(int(code)) is not None:
            moved.status, final = int(code), True
            moved.comment = str(response.get("ErrorComment", "") or "")
    if not final:
        raise RuntimeError("the C-MOVE ended without a final response")
    return moved


def move_study(calling_ae: str, peer: tuple[str, str, int], study: str, destination: str) -> Moved:
    """Ask (AE title, host, port) to C-MOVE every instance of *study* to the AE titled
    *destination*; RuntimeError when no association or no final response."""
    set_ae(destination, "move destination", allow_empty=False, allow_none=False)
    title, host, port = peer
    ae = client_ae(calling_ae)
    ae.add_requested_context(STUDY_ROOT_MOVE)
    assoc: Any = ae.associate(host, port, ae_title=title)
    if not assoc.is_established:
        raise RuntimeError(f"no association with {title}@{host}:{port}")
    try:
        query = study_query(study, "STUDY")
        responses = assoc.send_c_move(query, destination, STUDY_ROOT_MOVE)
        return outcome(destination, (status for status, _identifier in responses))
    finally:
        if assoc.is_established:
            assoc.release()


@contextmanager
def receiving(
    archive: Archive, ae_title: str, address: tuple[str, int], study: str, who: Principal
) -> Iterator[Received]:
    """A storage SCP titled *ae_title* on *address* while the block runs, storing each
    instance of *study* it receives as *who* (and refusing any other), with the statuses
    and audit of the C-GET retrieve; RuntimeError when it cannot listen."""
    patches.apply(archive.staging_area(), lambda assoc, msg: None)  # received to files
    ae = client_ae(ae_title)
    ae.require_called_aet = True
    for sop_class in storage_classes():
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
    done = Received()

    def on_store(event: Any) -> int:
        return ingest_received(archive, who, event, study, done)

    try:
        server: Any = ae.start_server(
            address, block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
        )
    except OSError as exc:
        raise RuntimeError(f"cannot listen on {address[0]}:{address[1]}: {exc}") from exc
    try:
        yield done
    finally:
        deadline = time.monotonic() + DRAIN_SECONDS
        while server.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)  # the peer's sub-association releasing after its last C-STORE
        server.shutdown()
