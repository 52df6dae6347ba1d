"""One HTTP error type carrying its status, and the one shape every error response has."""

from __future__ import annotations

from flask import Response, jsonify


class HTTPError(Exception):
    """A request the server answers with *status* and a readable *reason*."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


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
