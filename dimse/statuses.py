"""The one mapping of archive errors to DIMSE statuses: for C-STORE (PS3.4 B.2.3 Table B.2-1
and the general statuses of PS3.7 Annex C) and for C-FIND / C-MOVE / C-GET (PS3.4 C.4.1.1.4,
C.4.2.1.5, C.4.3.1.4)."""

from __future__ import annotations

from dataclasses import dataclass

from storage import errors

SUCCESS, PENDING, CANCEL = 0x0000, 0xFF00, 0xFE00
PROCESSING_FAILURE = 0x0110  # PS3.7 Annex C general status; STOW Table I.2-2 too
DUPLICATE_SOP_INSTANCE = 0x0111  # PS3.7 Annex C general status
OUT_OF_RESOURCES = 0xA700  # Table B.2-1 / C.4-1: Refused: Out of Resources
IDENTIFIER_DOES_NOT_MATCH = 0xA900  # Table C.4-1: Identifier does not match SOP Class
CANNOT_UNDERSTAND = 0xC000  # Table B.2-1: Error: Cannot understand; C.4-1: Unable to process
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122  # a Cxxx code, as in STOW (PS3.18 Table I.2-2)
NOT_AUTHORIZED = 0x0124  # PS3.7 Annex C general status: Refused: Not Authorized
# C.4.2.1.5 (C-MOVE) / C.4.3.1.4 (C-GET): Refused: Out of Resources - Unable to perform
# sub-operations.
SUB_OPERATIONS_OUT_OF_RESOURCES = 0xA702


def status_class(status: int) -> str | None:
    """The class of a final status (PS3.7 C: success, warning, cancel, failure); None for
    pending (FF00/FF01), which is not final."""
    if status in (PENDING, 0xFF01):
        return None
    if status == SUCCESS:
        return "success"
    if status == CANCEL:
        return "cancel"
    return "warning" if succeeded(status) else "failure"


def succeeded(status: int) -> bool:
    """Success, pending or a warning (PS3.7 C: 0000, FF00/FF01, 0001, Bxxx), not a failure."""
    return status in (SUCCESS, PENDING, 0xFF01, 0x0001) or 0xB000 <= status <= 0xBFFF


@dataclass(frozen=True)
class DimseStatus:
    """The status of an error when it refuses a C-STORE, and when it fails a query or
    retrieve (C-FIND, C-MOVE, C-GET)."""

    store: int
    query: int


# Every ArchiveError class, each with its own entry (tests/dimse/test_statuses.py fails when
# one is missing). The C-STORE codes agree with STOW-RS's Failure Reasons
# (dicomweb.errors.STATUS) wherever DIMSE has the same code.
STATUS: dict[type[errors.ArchiveError], DimseStatus] = {
    errors.ArchiveError: DimseStatus(PROCESSING_FAILURE, CANNOT_UNDERSTAND),
    errors.InvalidUID: DimseStatus(CANNOT_UNDERSTAND, IDENTIFIER_DOES_NOT_MATCH),
    errors.InvalidRequest: DimseStatus(CANNOT_UNDERSTAND, IDENTIFIER_DOES_NOT_MATCH),
    errors.NotFound: DimseStatus(PROCESSING_FAILURE, CANNOT_UNDERSTAND),
    errors.BlobMissing: DimseStatus(PROCESSING_FAILURE, CANNOT_UNDERSTAND),
    errors.CodecError: DimseStatus(PROCESSING_FAILURE, CANNOT_UNDERSTAND),
    errors.NotRenderable: DimseStatus(PROCESSING_FAILURE, CANNOT_UNDERSTAND),
    errors.RequestTooLarge: DimseStatus(OUT_OF_RESOURCES, OUT_OF_RESOURCES),
    errors.ImageTooLarge: DimseStatus(PROCESSING_FAILURE, CANNOT_UNDERSTAND),
    errors.OutOfResources: DimseStatus(OUT_OF_RESOURCES, OUT_OF_RESOURCES),
    errors.InvalidInstance: DimseStatus(CANNOT_UNDERSTAND, CANNOT_UNDERSTAND),
    errors.UnsupportedTransferSyntax: DimseStatus(TRANSFER_SYNTAX_NOT_SUPPORTED, CANNOT_UNDERSTAND),
    errors.StudyMismatch: DimseStatus(PROCESSING_FAILURE, CANNOT_UNDERSTAND),
    errors.DuplicateInstance: DimseStatus(DUPLICATE_SOP_INSTANCE, CANNOT_UNDERSTAND),
    errors.ConflictingInstance: DimseStatus(PROCESSING_FAILURE, CANNOT_UNDERSTAND),
    errors.InstanceBusy: DimseStatus(PROCESSING_FAILURE, CANNOT_UNDERSTAND),  # transient: retry
    errors.Forbidden: DimseStatus(NOT_AUTHORIZED, NOT_AUTHORIZED),
    errors.IndexUnavailable: DimseStatus(OUT_OF_RESOURCES, OUT_OF_RESOURCES),  # transient
    errors.StorageUnavailable: DimseStatus(OUT_OF_RESOURCES, OUT_OF_RESOURCES),  # transient
    # A blob in a storage tier that needs a recall, which has been started: the C-GET or
    # C-MOVE cannot perform its sub-operations now (A702); a later one will (transient).
    errors.RecallPending: DimseStatus(OUT_OF_RESOURCES, SUB_OPERATIONS_OUT_OF_RESOURCES),
}


def status_of(error: errors.ArchiveError) -> DimseStatus:
    """The entry of the error's class (or of its nearest listed ancestor)."""
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    raise AssertionError("ArchiveError is in STATUS")
