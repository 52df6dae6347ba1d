"""DELETE on the WADO-RS URLs of a study, series or instance: not in PS3.18, but what Azure's
DICOM service, Orthanc and dcm4chee all offer, with their statuses (docs/conformance.md)."""

from __future__ import annotations

from flask import Response

from dicomweb.service import Service


def delete(
    service: Service, study: str, series: str | None = None, instance: str | None = None
) -> Response:
    """DELETE /studies/{s}[/series/{se}[/instances/{i}]]: 204 once every stored instance of
    the resource is gone; 404 when none is stored (deleted already, or never seen)."""
    service.archive.delete(study, series, instance, who=service.who())
    return Response(status=204)
