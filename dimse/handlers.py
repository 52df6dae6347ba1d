"""DIMSE service handlers: plain functions with the archive injected (after pynetdicom's qrscp).

Statuses follow PS3.4 Annex B (storage), C (query/retrieve) and J (storage commitment).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dimse.admission import Admission, operation_of
from dimse.audit import audit_record, audited
from dimse.identifiers import IdentifierError, dataset_from, search_for
from dimse.patches import out_of_space
from dimse.sending import StoredFile, contexts_for
from dimse.statuses import (
    CANCEL,
    NOT_AUTHORIZED,
    OUT_OF_RESOURCES,
    PENDING,
    PROCESSING_FAILURE,
    SUCCESS,
    status_of,
)
from storage import Archive
from storage.access import Principal
from storage.audit import Operation as Audited
from storage.errors import ArchiveError, Forbidden
from storage.records import InstanceFile, StoredInstance

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What the handlers need: the archive, our AE title, the trust policy (with the grant of
    each association), the move destinations."""

    archive: Archive
    ae_title: str
    admission: Admission
    destinations: dict[str, tuple[str, int]] = field(default_factory=dict)


# The audit event of each DIMSE operation (storage.audit.Operation, PS3.15 A.5.3).
AUDITED = {
    "C_STORE": Audited.STORE,
    "C_FIND": Audited.SEARCH,
    "C_MOVE": Audited.SEND,
    "C_GET": Audited.SEND,
}


def refusal(services: Services, association: Any, request: Any) -> str | None:
    """Why the peer may not make *request* (answered 0124 by dimse.patches), or None. The
    one place the per-operation permissions of dimse_peers are enforced."""
    operation = operation_of(request)
    if operation is None or not association.is_acceptor:
        return None
    if services.admission.may(association, operation):
        return None
    reason = f"this AE may not use {operation.value.upper()}"
    log.warning("%s refused for %s", operation.value, association.requestor.ae_title)
    audit = AUDITED.get(type(request).__name__)
    if audit is not None:
        instance = str(getattr(request, "AffectedSOPInstanceUID", "") or "")
        record = audit_record(association, audit, NOT_AUTHORIZED, instance=instance)
        audited(services.archive, record)
    return reason


def who(services: Services, event: Any) -> Principal:
    """The principal of an accepted association (dimse.admission, kept since EVT_REQUESTED)."""
    principal = services.admission.principal_of(event.assoc)
    if principal is None:  # not accepted by dimse.admission: cannot happen
        raise Forbidden("the association has no identity")
    return principal


def _status(code: int, comment: str | None = None) -> Dataset:
    status = Dataset()
    status.Status = code
    if comment:
        status.ErrorComment = comment[:64]
    return status


def handle_echo(services: Services, event: Any) -> int:
    return SUCCESS


def handle_store(services: Services, event: Any) -> Dataset:
    """C-STORE: the received file (written by pynetdicom into the staging area, see
    dimse.patches) is handed to the one ingest function and renamed into place."""
    status, stored = _store(services, event)
    uids = (stored.study, stored.series, stored.instance) if stored else ("", "", "")
    instance = uids[2] or str(event.request.AffectedSOPInstanceUID or "")
    record = audit_record(
        event.assoc, Audited.STORE, int(status.Status), uids[0], uids[1], instance
    )
    audited(services.archive, record)
    return status


def _store(services: Services, event: Any) -> tuple[Dataset, StoredInstance | None]:
    path = Path(event.dataset_path)
    if out_of_space(path):
        path.unlink(missing_ok=True)
        reason = "the archive cannot write: No space left on device"
        log.info("C-STORE refused (%04X): %s", OUT_OF_RESOURCES, reason)
        return _status(OUT_OF_RESOURCES, reason), None
    try:
        result = services.archive.ingest_staged_file(path, who=who(services, event))
    except ArchiveError as exc:
        code = status_of(exc).store
        log.info("C-STORE refused (%04X): %s", code, exc.reason)
        return _status(code, exc.reason), None
    except Exception as exc:  # the peer still gets an answer; the archive stays consistent
        log.exception("C-STORE failed")
        path.unlink(missing_ok=True)
        return _status(PROCESSING_FAILURE, f"processing failure: {type(exc).__name__}"), None
    log.info("stored %s (%d frames)", result.instance, result.number_of_frames)
    return _status(SUCCESS), result


def handle_find(services: Services, event: Any) -> Iterator[tuple[int, Dataset | None]]:
    """C-FIND for Patient Root and Study Root, with the matching code QIDO-RS uses."""
    outcome = SUCCESS
    try:
        for status, identifier in _find(services, event):
            if status != PENDING:
                outcome = status
            yield status, identifier
    finally:
        study = str(event.identifier.get("StudyInstanceUID", "") or "")
        level = str(event.identifier.get("QueryRetrieveLevel", "") or "")
        record = audit_record(event.assoc, Audited.SEARCH, outcome, study=study, detail=level)
        audited(services.archive, record)


def _find(services: Services, event: Any) -> Iterator[tuple[int, Dataset | None]]:
    try:
        search, requested = search_for(event.identifier)
    except IdentifierError as exc:
        yield exc.status, _status(exc.status, str(exc))
        return
    level = str(event.identifier.QueryRetrieveLevel).strip().upper()
    try:
        page = services.archive.search(search, who=who(services, event))
    except ArchiveError as exc:
        code = status_of(exc).query
        yield code, _status(code, exc.reason)
        return
    for match in page.results:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield PENDING, dataset_from(match.dataset, requested, level, services.ae_title)


def _matches(services: Services, event: Any) -> list[InstanceFile]:
    search, _ = search_for(event.identifier)
    return services.archive.matching_files(search, who=who(services, event))


def _send(services: Services, matches: list[InstanceFile], event: Any) -> Iterator[Any]:
    for match in matches:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield PENDING, StoredFile(services.archive, match)


def _audit_send(services: Services, event: Any, outcome: int, matches: list[InstanceFile]) -> None:
    """The audit record of a C-MOVE or C-GET: the handler's outcome (pynetdicom adds the
    sub-operations' failures to the final status) and the instances sent, by study."""
    studies = sorted({m.study for m in matches}) if matches else []
    study = studies[0] if len(studies) == 1 else ""
    detail = f"{len(matches)} instances"
    destination = getattr(event, "move_destination", None)  # C-MOVE only
    if destination:
        detail += f" to {str(destination).strip()}"
    audited(
        services.archive, audit_record(event.assoc, Audited.SEND, outcome, study, detail=detail)
    )


def handle_move(services: Services, event: Any) -> Iterator[Any]:
    """C-MOVE to a destination of the configuration; the files stream from the blobs."""
    destination = services.destinations.get(str(event.move_destination).strip())
    if destination is None:
        log.warning("C-MOVE to unknown destination %r", event.move_destination)
        _audit_send(services, event, 0xA801, [])
        yield None, None  # pynetdicom answers 0xA801 (Move Destination unknown)
        return
    try:
        matches = _matches(services, event)
    except IdentifierError:
        matches = []  # nothing to move: zero sub-operations
    yield destination[0], destination[1], {"contexts": contexts_for(matches)}
    yield len(matches)
    yield from _send(services, matches, event)
    _audit_send(services, event, CANCEL if event.is_cancelled else SUCCESS, matches)


def handle_get(services: Services, event: Any) -> Iterator[Any]:
    """C-GET: the matches go back over the requesting association."""
    try:
        matches = _matches(services, event)
    except IdentifierError:
        matches = []
    yield len(matches)
    yield from _send(services, matches, event)
    _audit_send(services, event, CANCEL if event.is_cancelled else SUCCESS, matches)


# -- Storage Commitment Push Model (PS3.4 Annex J) ----------------------------------------------
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
NO_SUCH_OBJECT = 0x0112


def handle_commitment(services: Services, event: Any) -> tuple[int, Dataset | None]:
    """N-ACTION (Request Storage Commitment): answer at once, then report in an
    N-EVENT-REPORT on the same association which instances the archive holds."""
    request = event.action_information
    references = list(request.get("ReferencedSOPSequence", []))
    transaction = request.get("TransactionUID")
    if event.action_type != 1 or not transaction:
        return 0x0123, None  # No such action type / invalid argument
    assoc = event.assoc
    threading.Thread(
        target=_report_commitment,
        args=(services, assoc, str(transaction), references, who(services, event)),
        daemon=True,
    ).start()
    return SUCCESS, None


def committed(
    services: Services, references: list[Dataset], principal: Principal
) -> tuple[list[Dataset], list[Dataset]]:
    """Split references into those stored (with matching SOP class) and those not."""
    uids = [str(item.get("ReferencedSOPInstanceUID", "")) for item in references]
    stored = services.archive.stored_classes(uids, who=principal)
    success, failed = [], []
    for item in references:
        uid = str(item.get("ReferencedSOPInstanceUID", ""))
        if stored.get(uid) == str(item.get("ReferencedSOPClassUID", "")):
            success.append(item)
        else:
            failed.append(item)
    return success, failed


def _report_commitment(
    services: Services,
    assoc: Any,
    transaction: str,
    references: list[Dataset],
    principal: Principal,
) -> None:
    time.sleep(0.2)  # let the N-ACTION response go first
    success, failed = committed(services, references, principal)
    report = Dataset()
    report.TransactionUID = transaction
    report.RetrieveAETitle = services.ae_title
    if success:
        report.ReferencedSOPSequence = Sequence(success)
    if failed:
        items = []
        for item in failed:
            copy = Dataset()
            copy.ReferencedSOPClassUID = item.get("ReferencedSOPClassUID", "")
            copy.ReferencedSOPInstanceUID = item.get("ReferencedSOPInstanceUID", "")
            copy.FailureReason = NO_SUCH_OBJECT
            items.append(copy)
        report.FailedSOPSequence = Sequence(items)
    event_type = 2 if failed else 1
    if not assoc.is_established:
        log.warning("storage commitment %s: association gone before the report", transaction)
        return
    try:
        assoc.send_n_event_report(
            report, event_type, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE
        )
    except Exception:
        log.exception("storage commitment %s: could not send the report", transaction)
