"""DIMSE service handlers: plain functions with the archive injected (after pynetdicom's qrscp).

Statuses follow PS3.4 Annex B (storage), C (query/retrieve) and J (storage commitment).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_context

from dimse.identifiers import IdentifierError, dataset_from, search_for
from storage import (
    Archive,
    ArchiveError,
    ConflictingInstance,
    DuplicateInstance,
    InstanceBusy,
    InvalidInstance,
    OutOfResources,
)
from storage import query as index_query
from storage.transcoding import Transcoder, transcode_to_file

log = logging.getLogger(__name__)

# PS3.4 B.2.3 (and PS3.7 C general statuses) for C-STORE.
STORE_STATUS = {
    OutOfResources: 0xA700,
    InvalidInstance: 0xC000,
    DuplicateInstance: 0x0111,  # Duplicate SOP Instance, a general status of PS3.7 Annex C
    InstanceBusy: 0xA700,
    ConflictingInstance: 0xA900,
}
PENDING, SUCCESS, CANCEL = 0xFF00, 0x0000, 0xFE00


@dataclass
class Services:
    """What the handlers need: the archive, our AE title, the move destinations."""

    archive: Archive
    ae_title: str
    destinations: dict[str, tuple[str, int]] = field(default_factory=dict)


def _status(code: int, comment: str | None = None) -> Dataset:
    status = Dataset()
    status.Status = code
    if comment:
        status.ErrorComment = comment[:64]
    return status


def handle_echo(event) -> int:  # type: ignore[no-untyped-def]
    return SUCCESS


def handle_store(services: Services, event) -> Dataset:  # type: ignore[no-untyped-def]
    """C-STORE: the received file (written by pynetdicom into the staging area, see
    server.py) is handed to the one ingest function and renamed into place."""
    path = Path(event.dataset_path)
    try:
        result = services.archive.ingest_staged_file(path)
    except ArchiveError as exc:
        code = next((c for kind, c in STORE_STATUS.items() if isinstance(exc, kind)), 0xC000)
        log.info("C-STORE refused (%04X): %s", code, exc.reason)
        return _status(code, exc.reason)
    except Exception as exc:  # the peer still gets an answer; the archive stays consistent
        log.exception("C-STORE failed")
        path.unlink(missing_ok=True)
        return _status(0xC000, f"processing failure: {type(exc).__name__}")
    log.info("stored %s (%d frames)", result.instance, result.number_of_frames)
    return _status(SUCCESS)


def handle_find(services: Services, event) -> Iterator[tuple[int, Dataset | None]]:  # type: ignore[no-untyped-def]
    """C-FIND for Patient Root and Study Root, with the matching code QIDO-RS uses."""
    try:
        search, requested = search_for(event.identifier)
    except IdentifierError as exc:
        yield exc.status, _status(exc.status, str(exc))
        return
    level = str(event.identifier.QueryRetrieveLevel).strip().upper()
    try:
        page = index_query.run(services.archive.index.engine, search)
    except ArchiveError as exc:
        yield 0xA900, _status(0xA900, exc.reason)
        return
    for result in page.results:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield PENDING, dataset_from(result, requested, level, services.ae_title)


def _matches(services: Services, identifier: Dataset) -> list[tuple]:
    search, _ = search_for(identifier)
    return index_query.instance_files(services.archive.index.engine, search)


def _contexts(matches: list[tuple]) -> list:
    """Presentation contexts for sending the matches: each SOP class with its stored transfer
    syntax (and the uncompressed ones)."""
    by_class: dict[str, set[str]] = {}
    for _, _, _, sop_class, transfer_syntax, _ in matches:
        by_class.setdefault(sop_class, set()).add(transfer_syntax)
    contexts = []
    for sop_class, syntaxes in sorted(by_class.items()):
        for syntax in sorted(syntaxes):
            contexts.append(build_context(sop_class, [syntax]))
        contexts.append(build_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
    return contexts[:128]


class StoredFile(Dataset):
    """Stands for an instance file in C-MOVE / C-GET results: pynetdicom's retrieve services
    accept only Dataset objects, while its C-STORE can stream a file without decoding it
    (see ``install_file_sending``)."""

    def __init__(self, path: Path, sop_class_uid: str, sop_instance_uid: str, syntax: str) -> None:
        super().__init__()
        self.SOPInstanceUID = sop_instance_uid
        self._file_path = path
        self._sop_class_uid = sop_class_uid
        self._transfer_syntax = syntax


def install_file_sending() -> None:
    """Let Association.send_c_store take a StoredFile as its file path (once per process)."""
    from pynetdicom.association import Association

    if getattr(Association.send_c_store, "_wsiarchive", False):
        return
    original = Association.send_c_store

    def send_c_store(self, dataset, *args, **kwargs):  # type: ignore[no-untyped-def]
        temporary = None
        if isinstance(dataset, StoredFile):
            dataset, temporary = _sendable(self, dataset)
        try:
            return original(self, dataset, *args, **kwargs)
        finally:
            if temporary is not None:
                temporary.unlink(missing_ok=True)

    send_c_store._wsiarchive = True  # type: ignore[attr-defined]
    Association.send_c_store = send_c_store  # type: ignore[method-assign]


def _sendable(assoc, stored: StoredFile) -> tuple[Path | Dataset, Path | None]:  # type: ignore[no-untyped-def]
    """What to send for *stored*, and a temporary file to delete afterwards.

    The file itself, streamed unchanged, when the peer accepted its transfer syntax. When it
    accepted only an uncompressed one, compressed pixel data is decompressed into a
    temporary Explicit VR Little Endian file, streamed in turn (frame by frame, never the
    whole instance in memory). For a peer that takes only Implicit VR Little Endian the data
    set is then read so that pynetdicom re-encodes it: that conversion is lossless (PS3.5
    A.1, A.2) but holds the instance in memory. When nothing works the stored file is
    offered and pynetdicom fails the sub-operation for want of a context.
    """
    syntax = UID(stored._transfer_syntax)
    if _accepted(assoc, stored._sop_class_uid, syntax):
        return stored._file_path, None
    explicit = _accepted(assoc, stored._sop_class_uid, UID(ExplicitVRLittleEndian))
    implicit = _accepted(assoc, stored._sop_class_uid, UID(ImplicitVRLittleEndian))
    if not (explicit or implicit):
        return stored._file_path, None
    if not syntax.is_compressed:
        return dcmread(stored._file_path), None
    try:
        converted = stored._decompress()
    except ArchiveError as exc:
        log.warning("cannot decompress %s for the peer: %s", stored.SOPInstanceUID, exc)
        return stored._file_path, None
    if explicit:
        return converted, converted
    try:
        return dcmread(converted), None
    finally:
        converted.unlink(missing_ok=True)


def _accepted(assoc, sop_class: str, syntax: UID) -> bool:  # type: ignore[no-untyped-def]
    try:
        assoc._get_valid_context(sop_class, syntax, "scu", allow_conversion=False)
    except ValueError:
        return False
    return True


def _send(services: Services, matches: list[tuple], event) -> Iterator[tuple[int, object]]:  # type: ignore[no-untyped-def]
    for match in matches:
        if event.is_cancelled:
            yield CANCEL, None
            return
        path = services.archive.blobs.path(match[5])  # type: ignore[attr-defined]
        stored = StoredFile(path, match[3], match[2], match[4])
        stored._decompress = lambda match=match: _decompressed(services, match)
        yield PENDING, stored


def _decompressed(services: Services, match: tuple) -> Path:
    """The matched instance decompressed into a temporary file in the staging area."""
    record = services.archive.records(match[0], match[1], match[2])[0]
    staging = services.archive.blobs.staging  # type: ignore[attr-defined]
    target = staging / f"dimse-{secrets.token_hex(8)}.dcm"
    try:
        transcode_to_file(services.archive, record, ExplicitVRLittleEndian, target, _TRANSCODER)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


# Whole instances for DIMSE peers: no frame cache (each frame is needed once).
_TRANSCODER = Transcoder(cache_bytes=0)


def handle_move(services: Services, event) -> Iterator:  # type: ignore[no-untyped-def]
    """C-MOVE to a destination of the configuration; the files stream from the blobs."""
    destination = services.destinations.get(str(event.move_destination).strip())
    if destination is None:
        log.warning("C-MOVE to unknown destination %r", event.move_destination)
        yield None, None  # pynetdicom answers 0xA801 (Move Destination unknown)
        return
    try:
        matches = _matches(services, event.identifier)
    except IdentifierError:
        matches = []  # nothing to move: zero sub-operations
    yield destination[0], destination[1], {"contexts": _contexts(matches)}
    yield len(matches)
    yield from _send(services, matches, event)


def handle_get(services: Services, event) -> Iterator:  # type: ignore[no-untyped-def]
    """C-GET: the matches go back over the requesting association."""
    try:
        matches = _matches(services, event.identifier)
    except IdentifierError:
        yield 0
        return
    yield len(matches)
    yield from _send(services, matches, event)


# -- Storage Commitment Push Model (PS3.4 Annex J) ----------------------------------------------
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
NO_SUCH_OBJECT = 0x0112


def handle_commitment(services: Services, event) -> tuple[int, Dataset | None]:  # type: ignore[no-untyped-def]
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
        args=(services, assoc, str(transaction), references),
        daemon=True,
    ).start()
    return SUCCESS, None


def committed(services: Services, references: list[Dataset]) -> tuple[list, list]:
    """Split references into those stored (with matching SOP class) and those not."""
    from sqlalchemy import select

    from storage.models import STORED, Instance

    uids = [str(item.get("ReferencedSOPInstanceUID", "")) for item in references]
    with services.archive.index.engine.connect() as connection:
        stored = dict(
            connection.execute(
                select(Instance.sop_instance_uid, Instance.sop_class_uid).where(
                    Instance.sop_instance_uid.in_(uids), Instance.status == STORED
                )
            ).all()
        )
    success, failed = [], []
    for item in references:
        uid = str(item.get("ReferencedSOPInstanceUID", ""))
        if stored.get(uid) == str(item.get("ReferencedSOPClassUID", "")):
            success.append(item)
        else:
            failed.append(item)
    return success, failed


def _report_commitment(services: Services, assoc, transaction: str, references) -> None:  # type: ignore[no-untyped-def]
    time.sleep(0.2)  # let the N-ACTION response go first
    success, failed = committed(services, references)
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
