"""One HTTP error type carrying its status, and the one handler that renders it."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from storage.errors import (
    ArchiveError,
    CodecError,
    InvalidRequest,
    InvalidUID,
    NotFound,
    NotRenderable,
    OutOfResources,
    RequestTooLarge,
)

log = logging.getLogger(__name__)


class HTTPError(Exception):
    """A request the server answers with *status* and a readable *reason*."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


# Status for archive errors met outside STOW (which reports per instance instead).
ARCHIVE_STATUS: dict[type[ArchiveError], int] = {
    CodecError: 500,
    InvalidUID: 400,
    InvalidRequest: 400,
    NotFound: 404,
    NotRenderable: 406,
    OutOfResources: 503,
    RequestTooLarge: 413,
}


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    """The single error shape: ``{"status": N, "error": "<reason>"}`` as JSON.

    PS3.18 §8.6.3 leaves the Status Report format open; a small JSON object is readable by
    people and programs alike.
    """
    response = jsonify({"status": status, "error": reason})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def install(app: Flask) -> None:
    """Register the handlers that turn every error into the single error shape."""

    @app.errorhandler(HTTPError)
    def _http_error(error: HTTPError) -> Response:
        return error_response(error.status, error.reason, error.headers)

    @app.errorhandler(ArchiveError)
    def _archive_error(error: ArchiveError) -> Response:
        status = next((ARCHIVE_STATUS[k] for k in type(error).__mro__ if k in ARCHIVE_STATUS), 409)
        return error_response(status, error.reason)

    @app.errorhandler(HTTPException)
    def _werkzeug_error(error: HTTPException) -> Response:
        return error_response(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, f"internal error: {type(error).__name__}")
