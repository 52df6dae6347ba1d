"""The one mapping of errors to HTTP: each archive error's status, and for STOW-RS its Failure
Reason (0008,1197); the handlers that turn every error into the single error shape."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from dicomweb.http.errors import HTTPError, error_response
from storage import errors

log = logging.getLogger(__name__)

# Failure Reason values: PS3.18 Table I.2-2, and the implementation-specific ones
# docs/conformance.md declares (0111 duplicate, A901 study mismatch).
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
OUT_OF_RESOURCES = 0xA700
STUDY_MISMATCH = 0xA901
CANNOT_UNDERSTAND = 0xC000
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
NOT_AUTHORIZED = 0x0124  # PS3.7 Annex C: Refused: Not Authorized


@dataclass(frozen=True)
class WireStatus:
    """How an error goes over HTTP: the response status, and, when it refuses one instance
    of a STOW-RS request, the Failure Reason of that instance."""

    http: int
    failure_reason: int
    retry_after: int | None = None  # seconds, for a transient condition (RFC 9110 §10.2.3)


# Every ArchiveError class, each with its own entry (tests/dicomweb/test_errors.py fails when
# one is missing). Statuses: PS3.18 §8.5 and Table 10.5.3-1 (STOW-RS), RFC 9110 §15.
STATUS: dict[type[errors.ArchiveError], WireStatus] = {
    errors.ArchiveError: WireStatus(500, PROCESSING_FAILURE),  # unclassified: a server error
    errors.InvalidUID: WireStatus(400, CANNOT_UNDERSTAND),  # §8.3: invalid value → 400
    errors.InvalidRequest: WireStatus(400, CANNOT_UNDERSTAND),
    errors.NotFound: WireStatus(404, PROCESSING_FAILURE),
    errors.BlobMissing: WireStatus(404, PROCESSING_FAILURE),  # deleted or stored again
    errors.CodecError: WireStatus(500, PROCESSING_FAILURE),  # stored pixels it cannot decode
    errors.NotRenderable: WireStatus(406, PROCESSING_FAILURE),  # §8.7.4: none acceptable
    errors.RequestTooLarge: WireStatus(413, OUT_OF_RESOURCES),
    errors.ImageTooLarge: WireStatus(413, PROCESSING_FAILURE),
    # RFC 4918 §11.5: 507 Insufficient Storage, "unable to store the representation needed
    # to successfully complete the request"; Table I.2-2: A7xx.
    errors.OutOfResources: WireStatus(507, OUT_OF_RESOURCES),
    errors.InvalidInstance: WireStatus(400, CANNOT_UNDERSTAND),  # Table I.2-2: Cxxx
    errors.UnsupportedTransferSyntax: WireStatus(400, TRANSFER_SYNTAX_NOT_SUPPORTED),  # C122
    # Table 10.5.3-1: "a conflict in the request (e.g. ... Study Instance UID mismatch)".
    errors.StudyMismatch: WireStatus(409, STUDY_MISMATCH),
    errors.DuplicateInstance: WireStatus(409, DUPLICATE_SOP_INSTANCE),
    errors.ConflictingInstance: WireStatus(409, PROCESSING_FAILURE),  # Table I.2-2: 0110
    errors.InstanceBusy: WireStatus(409, PROCESSING_FAILURE),  # transient: the reason says so
    errors.Forbidden: WireStatus(403, NOT_AUTHORIZED),  # RFC 9110 §15.5.4
    # RFC 9110 §15.6.4: a transient condition, with Retry-After.
    errors.IndexUnavailable: WireStatus(503, OUT_OF_RESOURCES, retry_after=10),
    errors.StorageUnavailable: WireStatus(503, OUT_OF_RESOURCES, retry_after=10),
    # A blob in a storage tier that needs a recall (docs/conformance.md "Recall"): PS3.18
    # §8.5 leaves the status to HTTP; RFC 9110 §15.6.4 503 is the retryable one, with
    # Retry-After (§10.2.3) the recall's estimate, which the error carries. Not 202: it
    # promises no later result at this URI, and S3 (403 InvalidObjectState) and Azure
    # (409 BlobArchived) answer errors that clients do not retry.
    errors.RecallPending: WireStatus(503, OUT_OF_RESOURCES, retry_after=3600),
}
# Failure Reasons that mean the payload itself was unreadable: when nothing was stored and
# every failure is one of these, the request had "bad syntax" (400), else a conflict (409).
SYNTAX_FAILURES = frozenset({CANNOT_UNDERSTAND, TRANSFER_SYNTAX_NOT_SUPPORTED})


def status_of(error: errors.ArchiveError) -> WireStatus:
    """The entry of the error's class (or of its nearest listed ancestor)."""
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    raise AssertionError("ArchiveError is in STATUS")


def install(app: Flask) -> None:
    """Register the handlers that turn every error into the single error shape. An error
    after a response has started cannot get a status: see dicomweb.http.streaming."""

    @app.errorhandler(HTTPError)
    def _http_error(error: HTTPError) -> Response:
        return error_response(error.status, error.reason, error.headers)

    @app.errorhandler(errors.ArchiveError)
    def _archive_error(error: errors.ArchiveError) -> Response:
        status = status_of(error)
        seconds = getattr(error, "retry_after", None) or status.retry_after  # RecallPending
        retry = {"Retry-After": str(seconds)} if seconds else None
        return error_response(status.http, error.reason, retry)

    @app.errorhandler(MethodNotAllowed)
    def _method_not_allowed(error: MethodNotAllowed) -> Response:
        # RFC 9110 §15.5.6: a 405 names the methods the target resource supports.
        allowed = ", ".join(sorted(error.valid_methods or ()))
        reason = f"{request.method} is not supported on {request.path}; it supports {allowed}"
        return error_response(405, reason, {"Allow": allowed})

    @app.errorhandler(HTTPException)
    def _werkzeug_error(error: HTTPException) -> Response:
        return error_response(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, f"internal error: {type(error).__name__}")
