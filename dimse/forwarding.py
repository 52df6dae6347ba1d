"""Sending instances to a DICOM destination by C-STORE (PS3.4 B) as forwarding does: one
association per batch, proposing each SOP class with the instance's own transfer syntax
(and the uncompressed ones), each file streamed as C-MOVE streams it (dimse.sending)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from pynetdicom import AE, _config

from dimse.sending import StoredFile, accepted_by, contexts_for
from storage import Archive
from storage.records import InstanceFile

TIMEOUT = 30.0  # seconds for the association and for each DIMSE response
MAX_PDU = 4 << 20  # the Maximum Length we receive (PS3.8 D.1)
# C-STORE statuses that mean the destination holds the instance (PS3.4 B.2.3, C.4.2.1.4):
# success, the warnings (coercion, elements discarded, data set does not match the SOP
# class), and Duplicate SOP Instance (a resend after a crash between a send and its record).
STORED = frozenset({0x0000, 0xB000, 0xB006, 0xB007, 0x0111})


def store(
    archive: Archive,
    calling_ae: str,
    destination: tuple[str, str, int],
    items: Sequence[InstanceFile],
    done: Callable[[InstanceFile, str | None], bool],
) -> None:
    """C-STORE *items* in order to (AE title, host, port) over one association; *done* is
    told each outcome (None for stored, else the reason) and returns False to stop there.
    An association that cannot be made fails the first item."""
    _config.STORE_SEND_CHUNKED_DATASET = True  # files are streamed, not decoded
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    ae.maximum_pdu_size = MAX_PDU
    title, host, port = destination
    assoc: Any = ae.associate(
        host, port, contexts_for(list(items)), ae_title=title, max_pdu=MAX_PDU
    )
    if not assoc.is_established:
        if items:
            done(items[0], f"no association with {title}@{host}:{port}")
        return
    try:
        accepts = accepted_by(assoc)
        for item in items:
            with ExitStack() as cleanup:
                try:
                    sendable = StoredFile(archive, item).sendable(accepts, cleanup)
                    status = assoc.send_c_store(sendable)
                except (ValueError, OSError, RuntimeError) as exc:  # no context, say
                    reason: str | None = f"C-STORE not sent: {exc}"
                else:
                    code = getattr(status, "Status", None)
                    if code is None:
                        reason = "no C-STORE response (association aborted or timed out)"
                    else:
                        reason = None if int(code) in STORED else f"C-STORE status {int(code):04X}"
            if not done(item, reason) or not assoc.is_established:
                return
    finally:
        if assoc.is_established:
            assoc.release()
