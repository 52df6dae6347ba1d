"""Correcting the attributes of stored studies after ingest, with the request of Azure's DICOM
service bulk update (API v2: POST /studies/$bulkUpdate, a list of studies and a DICOM JSON
change data set), answered when done (docs/conformance.md, "Correcting attributes")."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from dicomweb.http.errors import HTTPError
from dicomweb.http.mediatypes import DICOM_JSON
from dicomweb.service import Service
from storage.dicom.corrections import from_json
from storage.errors import InvalidRequest

JSON_TYPES = ("application/json", DICOM_JSON)


def bulk_update(service: Service) -> Response:
    """POST /studies/$bulkUpdate: {"studyInstanceUids": [...], "changeDataset": {...}} and,
    as this archive's extension, "seriesInstanceUids" (with one study) to correct specimen
    attributes of those series only. 200 with how many instances each study had corrected;
    400 before anything changes when an attribute or value is refused."""
    if request.mimetype not in JSON_TYPES:
        raise HTTPError(415, f"the request body must be one of {', '.join(JSON_TYPES)}")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    studies = _uids(body, "studyInstanceUids")
    series = _uids(body, "seriesInstanceUids") if "seriesInstanceUids" in body else []
    if not studies:
        raise InvalidRequest("studyInstanceUids must name at least one study")
    if series and len(studies) != 1:
        raise InvalidRequest("seriesInstanceUids needs exactly one study in studyInstanceUids")
    correction = from_json(body.get("changeDataset") or {})
    who = service.who()
    named = tuple(series) or None
    # Every study checked (UIDs, stored and visible, each object able to take the
    # correction) before the first is corrected; each is then committed on its own. (One
    # study is checked by update itself.)
    for study in studies if len(studies) > 1 else []:
        service.archive.correctable(study, named, correction, who=who)
    corrected = {
        study: service.archive.update(study, named, correction, who=who) for study in studies
    }
    return jsonify({"status": "succeeded", "instancesUpdated": corrected})


def _uids(body: dict[str, Any], name: str) -> list[str]:
    found = body.get(name)
    if not isinstance(found, list) or not all(isinstance(uid, str) for uid in found):
        raise InvalidRequest(f"{name} must be a list of UIDs")
    return list(dict.fromkeys(found))
