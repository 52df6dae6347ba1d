"""The endpoints of load balancers and monitoring, outside the DICOMweb root: /healthz
(liveness), /readyz (readiness) and /metrics (Prometheus). They answer before authentication
and the limits, are neither audited nor written to the access log, and reveal no patient data."""

from __future__ import annotations

import json
import logging
import time
from typing import Protocol

from flask import Flask, Response, request

from dicomweb.http.errors import HTTPError, error_response
from dicomweb.identity.authenticate import Authenticator, loopback
from dicomweb.service import Service
from storage import metrics
from storage.access import Scope
from storage.records import Check

log = logging.getLogger(__name__)
HEALTHZ, READYZ, METRICS = "/healthz", "/readyz", "/metrics"
PATHS = frozenset({HEALTHZ, READYZ, METRICS})


class ProbeConfig(Protocol):
    """The settings of the probes (declared in wsiarchive's settings)."""

    @property
    def metrics(self) -> bool: ...

    @property
    def metrics_access(self) -> str: ...

    @property
    def draining(self) -> bool:
        """True once the server was asked to stop and drains (readiness 503)."""
        ...


def _json(status: int, body: object) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _check(check: Check) -> dict[str, object]:
    found: dict[str, object] = {"name": check.name, "ok": check.ok, "seconds": check.seconds}
    if check.reason:
        found["reason"] = check.reason
    return found


class Probes:
    """The three endpoints over one archive."""

    def __init__(self, service: Service, config: ProbeConfig, who: Authenticator) -> None:
        self.service = service
        self.config = config
        self.metrics = config.metrics
        self.access = config.metrics_access
        self.authenticator = who
        self.was_ready = True

    def healthz(self) -> Response:
        # Liveness: this process answers. Nothing else is touched.
        return _json(200, {"status": "alive"})

    def readyz(self) -> Response:
        started = time.perf_counter()
        checks = self.service.archive.readiness()
        drain = self.config.draining
        checks.append(Check("draining", not drain, 0.0, "the server is stopping" if drain else ""))
        ready = all(check.ok for check in checks)
        if ready != self.was_ready:
            failed = ", ".join(c.name for c in checks if not c.ok)
            log.warning("readiness: %s", "ready" if ready else f"not ready ({failed})")
            self.was_ready = ready
        body = {
            "status": "ready" if ready else "not ready",
            "seconds": time.perf_counter() - started,
            "checks": [_check(check) for check in checks],
        }
        response = _json(200 if ready else 503, body)
        if not ready:
            response.headers["Retry-After"] = "5"
        return response

    def scrape(self) -> Response:
        if not self.metrics:
            return error_response(404, "metrics are off (the metrics setting)")
        if self.access == "loopback" and not loopback(request.remote_addr):
            return error_response(403, "metrics are served to this machine only (metrics_access)")
        if self.access == "token":
            principal = self.authenticator.principal()  # 401 without a valid token
            if not principal.may(Scope.METRICS):
                return error_response(403, "reading metrics needs the metrics scope")
        return Response(metrics.exposition(), content_type=metrics.CONTENT_TYPE)


def install(app: Flask, service: Service, config: ProbeConfig, who: Authenticator) -> None:
    """Answer the probes first of all (before CORS, authentication and the limits)."""
    probes = Probes(service, config, who)
    views = {HEALTHZ: probes.healthz, READYZ: probes.readyz, METRICS: probes.scrape}

    @app.before_request
    def _probe() -> Response | None:
        view = views.get(request.path)
        if view is None:
            return None
        if request.method not in ("GET", "HEAD"):
            return error_response(405, f"{request.path} is read only", {"Allow": "GET, HEAD"})
        try:
            return view()
        except HTTPError as exc:
            return error_response(exc.status, exc.reason, exc.headers)
