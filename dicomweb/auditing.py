"""The audit trail of the web front door: one record per request for patient data (who, from
where, which study/series/instance, which transaction, the status), written in one place after
the transaction answered; refused credentials as failed logins."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Flask, Response, g, request

from dicomweb.http.errors import error_response
from dicomweb.service import Service
from storage.access import Principal
from storage.audit import AuditRecord, Operation

log = logging.getLogger(__name__)
AuditItem = tuple[str, str, str, bool]  # study, series, instance, stored / succeeded
_OPERATIONS = {
    "Search": Operation.SEARCH,
    "Store": Operation.STORE,
    "Retrieve": Operation.RETRIEVE,
    "Delete": Operation.DELETE,
    "ReadChangeFeed": Operation.SEARCH,  # a query of the events of every study
}


def note(study: str, series: str, instance: str, succeeded: bool) -> None:
    """Name one instance a transaction touched (STOW: each part), for the audit record."""
    items: list[AuditItem] = g.setdefault("audit_items", [])
    items.append((study, series, instance, succeeded))


def _operation(endpoint: str) -> Operation | None:
    for prefix, operation in _OPERATIONS.items():
        if endpoint.startswith(prefix):
            return operation
    return None


def _records(principal: Principal | None, response: Response) -> list[AuditRecord]:
    now = datetime.now(UTC).replace(tzinfo=None)
    endpoint = request.url_rule.endpoint.split(".")[-1] if request.url_rule else ""
    operation = _operation(endpoint)
    if principal is None:
        if response.status_code != 401:
            return []
        source = request.remote_addr or ""
        return [AuditRecord(now, "", "", source, Operation.LOGIN, outcome=401, success=False)]
    if operation is None:
        return []
    variables = request.view_args or {}
    # Query parameters are the search; a retrieve's only name representations.
    detail = request.query_string.decode("latin-1")[:2000] if operation is Operation.SEARCH else ""
    if endpoint.startswith("ReadChangeFeed"):  # named, so it is not taken for a QIDO-RS one
        detail = f"{request.path}?{detail}"[:2000]
    ok = response.status_code < 400
    base = (now, principal.subject, principal.kind.value, principal.source, operation)
    items: list[AuditItem] = g.get("audit_items") or [
        (variables.get("study", ""), variables.get("series", ""), variables.get("instance", ""), ok)
    ]
    return [
        AuditRecord(*base, study, series, instance, response.status_code, ok and done, detail)
        for study, series, instance, done in items
    ]


def install(app: Flask, service: Service) -> None:
    """Record every request for patient data once its status is known."""

    @app.after_request
    def _audit(response: Response) -> Response:
        if request.method == "OPTIONS":
            return response
        try:
            for record in _records(g.get("principal"), response):
                service.archive.audit(record)
        except Exception:
            # No patient data leaves unrecorded: a success whose record cannot be written
            # (the index's disk full, the database gone) is not sent. A refusal, which
            # delivered nothing, keeps its status.
            log.exception("could not write the audit record of %s", request.path)
            if response.status_code < 400:
                response.close()
                return error_response(
                    503,
                    "the access could not be recorded in the audit trail; try again later",
                    {"Retry-After": "30"},
                )
        return response
