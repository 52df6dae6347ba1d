"""Retrieving a study from a remote AE by C-GET (PS3.4 C.4.3, Study Root): a C-FIND at the
IMAGE level learns the study's SOP classes, each is proposed for the C-STORE sub-operations
in our SCP role (PS3.7 D.3.3.4) with the common compressed transfer syntaxes and the
uncompressed ones, each in a context of its own so that the peer sends an instance
unchanged, and each received instance, written by pynetdicom straight into the
staging area (dimse.patches), is stored through the archive's one ingest."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    MRImageStorage,
    RLELossless,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    VLWholeSlideMicroscopyImageStorage,
)
from pynetdicom import AE, build_context, build_role, evt
from pynetdicom.presentation import PresentationContext

from dimse import patches
from dimse.audit import audit_record, audited
from dimse.identifiers import STUDY_ROOT_FIND, STUDY_ROOT_GET
from dimse.sending import MAX_CONTEXTS
from dimse.statuses import OUT_OF_RESOURCES, PENDING, PROCESSING_FAILURE, SUCCESS, status_of
from storage import Archive
from storage.access import Principal
from storage.audit import Operation
from storage.errors import ArchiveError, DuplicateInstance
from storage.records import StoredInstance

log = logging.getLogger(__name__)
TIMEOUT = 60.0  # seconds for the association and for each DIMSE message
MAX_PDU = 4 << 20  # the Maximum Length we receive (PS3.8 D.1)
# Each SOP class is proposed once per syntax, so that the peer can send each instance in the
# syntax it holds it in (an acceptor picks one syntax per context, PS3.8 9.3.2.2.2).
SYNTAXES = (
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEG2000,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEGLosslessSV1,
    RLELossless,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
# Proposed when the peer's C-FIND names no SOP Class UID (an optional return key).
DEFAULT_CLASSES = (
    VLWholeSlideMicroscopyImageStorage,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    MRImageStorage,
    UltrasoundImageStorage,
    SecondaryCaptureImageStorage,
)


@dataclass
class Received:
    """What a C-GET did."""

    stored: int = 0
    duplicates: int = 0  # held here already
    failed: int = 0
    reason: str = ""  # of the last failure


def storage_contexts(sop_classes: list[str]) -> list[PresentationContext]:
    """Contexts for receiving *sop_classes*: one per (class, syntax), within the 128
    contexts of an association together with the C-GET one."""
    room = (MAX_CONTEXTS - 1) // len(SYNTAXES)
    contexts: list[PresentationContext] = []
    for sop_class in sop_classes[:room]:
        contexts.extend(build_context(sop_class, [syntax]) for syntax in SYNTAXES)
    if len(sop_classes) > room:
        log.warning("C-GET proposes %d of %d SOP classes", room, len(sop_classes))
    return contexts


def get_study(
    archive: Archive,
    calling_ae: str,
    peer: tuple[str, str, int],
    study: str,
    who: Principal,
) -> Received:
    """C-GET every instance of *study* from (AE title, host, port) into *archive* as *who*;
    RuntimeError when no association or no retrieve can be made."""
    patches.apply(archive.staging_area(), lambda assoc, msg: None)  # received to files
    title, host, port = peer
    classes = sop_classes(calling_ae, peer, study) or list(DEFAULT_CLASSES)
    done = Received()
    reported = {"failed": 0}

    def on_store(event: Any) -> int:
        return ingest_received(archive, who, event, study, done)

    ae = client_ae(calling_ae)
    ae.add_requested_context(STUDY_ROOT_GET)
    for context in storage_contexts(classes):
        ae.add_requested_context(str(context.abstract_syntax), context.transfer_syntax)
    roles: list[Any] = [build_role(sop_class, scp_role=True) for sop_class in classes]
    assoc: Any = ae.associate(
        host,
        port,
        ae_title=title,
        max_pdu=MAX_PDU,
        ext_neg=roles,
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    if not assoc.is_established:
        raise RuntimeError(f"no association with {title}@{host}:{port}")
    try:
        final = None
        for status, _identifier in assoc.send_c_get(study_query(study, "STUDY"), STUDY_ROOT_GET):
            code = getattr(status, "Status", None)
            if code is None:
                raise RuntimeError("no C-GET response (association aborted or timed out)")
            if int(code) not in (PENDING, 0xFF01):
                final = status
        if final is not None:
            reported["failed"] = int(getattr(final, "NumberOfFailedSuboperations", 0) or 0)
            if int(final.Status) not in (SUCCESS, 0xB000) and not done.stored + done.duplicates:
                comment = getattr(final, "ErrorComment", "") or ""
                raise RuntimeError(f"C-GET status {int(final.Status):04X} {comment}".strip())
    finally:
        if assoc.is_established:
            assoc.release()
    # Sub-operations the peer could not even send (no context for the instance, say).
    unsent = reported["failed"] - done.failed
    if unsent > 0:
        done.failed += unsent
        done.reason = f"{unsent} C-STORE sub-operations failed at the peer"
    return done


def ingest_received(
    archive: Archive, who: Principal, event: Any, study: str, done: Received
) -> int:
    """Store the file of one received C-STORE (of a C-GET, or of a C-MOVE to our storage
    SCP) as *who*, refusing an instance of another study than *study*; audited as the
    listener audits a C-STORE, from the peer (dimse.audit). The C-STORE status to answer
    (PS3.4 B.2.3)."""
    status, stored = _ingest(archive, who, Path(event.dataset_path), study, done)
    uids = (stored.study, stored.series, stored.instance) if stored else ("", "", "")
    instance = uids[2] or str(getattr(event.request, "AffectedSOPInstanceUID", "") or "")
    record = audit_record(event.assoc, Operation.STORE, status, uids[0], uids[1], instance)
    audited(archive, record)
    return status


def _ingest(
    archive: Archive, who: Principal, path: Path, study: str, done: Received
) -> tuple[int, StoredInstance | None]:
    if patches.out_of_space(path):
        path.unlink(missing_ok=True)
        done.failed += 1
        done.reason = "the archive cannot write: No space left on device"
        return OUT_OF_RESOURCES, None
    try:
        stored = archive.ingest_staged_file(path, study, who=who)
    except DuplicateInstance:
        done.duplicates += 1
        return SUCCESS, None
    except ArchiveError as exc:
        done.failed += 1
        done.reason = exc.reason
        return status_of(exc).store, None
    except Exception as exc:  # the peer still gets an answer
        log.exception("storing a retrieved instance failed")
        path.unlink(missing_ok=True)
        done.failed += 1
        done.reason = f"processing failure: {type(exc).__name__}"
        return PROCESSING_FAILURE, None
    done.stored += 1
    return SUCCESS, stored


def client_ae(calling_ae: str) -> AE:
    """An AE calling as *calling_ae* with our timeouts and Maximum Length."""
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    ae.maximum_pdu_size = MAX_PDU
    return ae


def study_query(study: str, level: str) -> Dataset:
    """The Study Root identifier of *study* at *level* (PS3.4 C.6.2.1)."""
    query = Dataset()
    query.QueryRetrieveLevel = level
    query.StudyInstanceUID = study
    return query


def sop_classes(calling_ae: str, peer: tuple[str, str, int], study: str) -> list[str]:
    """The SOP classes of the study's instances by C-FIND (PS3.4 C.4.1); [] when the peer
    does not say."""
    ae = client_ae(calling_ae)
    ae.add_requested_context(STUDY_ROOT_FIND)
    title, host, port = peer
    assoc: Any = ae.associate(host, port, ae_title=title, max_pdu=MAX_PDU)
    if not assoc.is_established:
        raise RuntimeError(f"no association with {title}@{host}:{port}")
    query = study_query(study, "IMAGE")
    query.SeriesInstanceUID = ""
    query.SOPInstanceUID = ""
    query.SOPClassUID = ""
    found: set[str] = set()
    try:
        for status, identifier in assoc.send_c_find(query, STUDY_ROOT_FIND):
            if identifier is not None and int(getattr(status, "Status", SUCCESS)) == PENDING:
                value = str(identifier.get("SOPClassUID", "") or "")
                if value:
                    found.add(str(UID(value)))
    finally:
        if assoc.is_established:
            assoc.release()
    return sorted(found)
