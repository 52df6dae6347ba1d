"""The forwarding API, beside DICOMweb (docs/operations.md "Forwarding"): GET /api/forward
shows each destination's outbox counts, POST /api/forward/<destination>/studies/<study>
queues a study for a destination as `wsiarchive send` does. Both need the admin scope: they
name every study's way out of the archive."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Protocol

from flask import Blueprint, Response

from dicomweb.http.errors import HTTPError
from dicomweb.service import Service
from storage.access import Scope, require

PREFIX = "/api/forward"


class ForwardConfig(Protocol):
    """The settings of the forwarding API (declared in wsiarchive's settings)."""

    @property
    def forward_destinations(self) -> str: ...


def _names(config: ForwardConfig) -> set[str]:
    """The destinations' names (the forwarder checks the rest of each at start-up)."""
    try:
        tables = json.loads(config.forward_destinations or "[]")
    except ValueError:
        return set()
    if not isinstance(tables, list):
        return set()
    return {str(t.get("name")) for t in tables if isinstance(t, dict) and t.get("name")}


def _json(document: object, status: int = 200) -> Response:
    return Response(json.dumps(document, indent=1), status, mimetype="application/json")


def blueprint(service: Service, config: ForwardConfig) -> Blueprint:
    """The routes of the forwarding API."""
    routes = Blueprint("forward", __name__, url_prefix=PREFIX)
    names = _names(config)

    @routes.get("")
    def status() -> Response:
        require(service.who(), Scope.ADMIN)
        return _json([asdict(count) for count in service.archive.forward_counts()])

    @routes.post("/<destination>/studies/<study>")
    def send(destination: str, study: str) -> Response:
        who = service.who()
        require(who, Scope.ADMIN)
        if destination not in names:
            raise HTTPError(404, f"no forwarding destination {destination!r}")
        records = service.archive.records(study, who=who)
        queued = service.archive.enqueue_forward(
            destination, [(r.study, r.series, r.instance) for r in records], again=True
        )
        return _json({"queued": queued, "instances": len(records)}, 202)

    return routes
