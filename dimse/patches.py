"""Process-wide settings and corrections of pynetdicom for the DICOM listener's process,
applied once at its start-up (``apply``). Each names the upstream behaviour it changes:

1. pynetdicom decodes every received data set into memory and encodes every sent one:
   ``_config.STORE_RECV_CHUNKED_DATASET`` makes it write received C-STORE data straight to
   a file, ``STORE_SEND_CHUNKED_DATASET`` send files without decoding them.
2. Those received files go to ``tempfile``'s directory: it is made the archive's staging
   area, so storing a received instance is a rename, never a copy.
3. pynetdicom's retrieve services (C-MOVE, C-GET) accept only Dataset objects from the
   handler, while Association.send_c_store streams a file given its path: send_c_store is
   wrapped to take a dimse.sending.StoredFile and send what the peer accepted.
4. pynetdicom writes a received data set to its file inside the DIMSE reactor thread, where
   an OSError aborts the association: on a full disk the peer would get an A-ABORT instead
   of the C-STORE status PS3.4 B.2.3 prescribes (A700 Refused: Out of Resources). The file
   is made a ``ReceivedFile``, which stops writing when the disk is full and remembers it
   (``out_of_space``), so the handler answers A700.
5. pynetdicom's DUL (``DULServiceProvider._read_pdu_data``) reads as many bytes as a PDU's
   header announces, before any check of the association: one anonymous connection
   announcing a 4 GB PDU made the listener buffer it. ``read_pdu_data`` bounds a PDU to
   BEFORE_ACCEPTANCE bytes until the association is established (an A-ASSOCIATE-RQ is small)
   and to our Maximum Length (PS3.8 D.1) after; a larger one gets an A-ABORT (PS3.8 §9.3.8,
   service-provider, invalid-PDU-parameter value) and the connection is closed unread.
6. pynetdicom hands every DIMSE request to its service class, whose handler protocols (a
   C-MOVE handler must name a destination before it may fail) leave no way to refuse one:
   ``Association._serve_request`` first asks *refusal* (dimse.handlers) and answers a
   request the peer may not make with 0124 Refused: Not Authorized (PS3.7 Annex C).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import struct
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from dimse.sending import StoredFile, accepted_by
from dimse.statuses import NOT_AUTHORIZED

log = logging.getLogger(__name__)
_applied = False
BEFORE_ACCEPTANCE = 64 << 10  # bytes: the largest PDU read before an association exists
# PS3.8 §9.2 states in which an association is established (data transfer, release).
ESTABLISHED_STATES = frozenset(f"Sta{n}" for n in range(6, 13))
# A-ABORT PDU (PS3.8 §9.3.8, Table 9-26): source 2 (service-provider), reason 6
# (invalid-PDU-parameter value).
PROVIDER_ABORT = struct.pack(">BBLBBBB", 0x07, 0, 4, 0, 0, 2, 6)
PDU_TYPES = range(0x01, 0x08)
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_OUT_OF_SPACE: set[str] = set()  # received files that could not be written completely


def out_of_space(path: Path) -> bool:
    """True (once) when the disk filled up while *path* was being received."""
    try:
        _OUT_OF_SPACE.remove(str(path))
    except KeyError:
        return False
    return True


class ReceivedFile:
    """pynetdicom's temporary file of a received C-STORE data set (correction 4)."""

    def __init__(self, **kwargs: Any) -> None:
        self._file: Any = None
        try:
            self._file = tempfile.NamedTemporaryFile(**kwargs)  # noqa: SIM115 (pynetdicom closes)
            self.name = self._file.name
        except OSError as exc:
            if exc.errno not in _NO_SPACE:
                raise
            self.name = os.path.join(tempfile.gettempdir(), f"{secrets.token_hex(8)}.nospace")
            _OUT_OF_SPACE.add(self.name)

    @property
    def file(self) -> ReceivedFile:
        return self  # pynetdicom calls .file.flush()

    def _guard(self, operation: str, *args: Any) -> Any:
        if self._file is None or self.name in _OUT_OF_SPACE:
            return None
        try:
            return getattr(self._file, operation)(*args)
        except OSError as exc:
            if exc.errno not in _NO_SPACE:
                raise
            _OUT_OF_SPACE.add(self.name)
            return None

    def write(self, data: bytes) -> int:
        self._guard("write", data)
        return len(data)

    def flush(self) -> None:
        self._guard("flush")

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                if exc.errno not in _NO_SPACE:
                    raise
                _OUT_OF_SPACE.add(self.name)


def receive_limit(dul: Any) -> int | None:
    """The largest PDU length *dul* reads now; None for no limit."""
    if dul.state_machine.current_state not in ESTABLISHED_STATES:
        return BEFORE_ACCEPTANCE
    assoc = dul.assoc
    local = assoc.acceptor if assoc.is_acceptor else assoc.requestor
    return int(local.maximum_length) or None


def read_pdu_data(dul: Any) -> None:
    """pynetdicom's DUL read of one PDU (Evt3/4/6/10/12/13/16 when it decodes, Evt17 when the
    connection ends, Evt19 when it is invalid), bounded by ``receive_limit``."""
    sock = dul.socket
    try:
        header = sock.recv(6)
    except OSError:  # TimeoutError included
        dul.event_queue.put("Evt17")
        return
    if len(header) != 6:
        dul.event_queue.put("Evt17")
        return
    pdu_type, _, length = struct.unpack(">BBL", header)
    if pdu_type not in PDU_TYPES:
        log.warning("unknown PDU type 0x%02X received", pdu_type)
        dul.event_queue.put("Evt19")
        return
    limit = receive_limit(dul)
    if limit is not None and length > limit:
        log.warning(
            "PDU of %d bytes announced in %s (at most %d): A-ABORT",
            length,
            dul.state_machine.current_state,
            limit,
        )
        with contextlib.suppress(OSError):
            sock.socket.send(PROVIDER_ABORT)
        sock.close()  # Evt17: the state machine ends the association
        return
    try:
        body = sock.recv(length)
    except OSError:
        dul.event_queue.put("Evt17")
        return
    if len(body) != length:
        dul.event_queue.put("Evt17")
        return
    try:
        pdu, event = dul._decode_pdu(header + body)
    except Exception:
        log.exception("undecodable PDU received")
        dul.event_queue.put("Evt19")
        return
    dul.event_queue.put(event)
    dul._recv_pdu.put(pdu)


Refusal = Callable[[Any, Any], str | None]  # (association, request) -> reason, or None


def answer_refused(assoc: Any, request: Any, context_id: int, reason: str) -> None:
    """The response to *request* with status 0124 and *reason* as its Error Comment."""
    response = type(request)()
    response.MessageIDBeingRespondedTo = request.MessageID
    for name, source in (
        ("AffectedSOPClassUID", "AffectedSOPClassUID"),
        ("AffectedSOPInstanceUID", "AffectedSOPInstanceUID"),
        ("AffectedSOPClassUID", "RequestedSOPClassUID"),  # N-ACTION
        ("AffectedSOPInstanceUID", "RequestedSOPInstanceUID"),
    ):
        if getattr(request, source, None) is not None and hasattr(response, name):
            setattr(response, name, getattr(request, source))
    response.Status = NOT_AUTHORIZED
    if hasattr(response, "ErrorComment"):
        response.ErrorComment = reason[:64]
    received = getattr(request, "_dataset_file", None)  # a C-STORE data set, not wanted
    if received is not None:
        received.close()
        Path(received.name).unlink(missing_ok=True)
    assoc.dimse.send_msg(response, context_id)


def apply(staging_area: Path, refusal: Refusal) -> None:
    """Apply every setting and correction, once per process."""
    global _applied
    if _applied:
        return
    from pynetdicom import _config, dimse_messages
    from pynetdicom.association import Association
    from pynetdicom.dul import DULServiceProvider

    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.STORE_SEND_CHUNKED_DATASET = True
    tempfile.tempdir = str(staging_area)
    dimse_messages.NamedTemporaryFile = ReceivedFile  # type: ignore[assignment]
    original = Association.send_c_store

    def send_c_store(self: Any, dataset: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(dataset, StoredFile):
            return original(self, dataset, *args, **kwargs)
        with ExitStack() as cleanup:
            sendable = dataset.sendable(accepted_by(self), cleanup)
            return original(self, sendable, *args, **kwargs)

    # mypy refuses assigning to a method; the wrapper has the method's own signature.
    Association.send_c_store = send_c_store  # type: ignore[method-assign]
    DULServiceProvider._read_pdu_data = read_pdu_data  # type: ignore[method-assign,assignment]
    serve_request = Association._serve_request

    def guarded_serve_request(self: Any, msg: Any, context_id: int) -> None:
        reason = refusal(self, msg) if msg.is_valid_request else None
        if reason is None:
            serve_request(self, msg, context_id)
        else:
            answer_refused(self, msg, context_id, reason)

    Association._serve_request = guarded_serve_request  # type: ignore[method-assign]
    _applied = True
