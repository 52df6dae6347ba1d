"""The conversion job API, beside DICOMweb (it is no DICOM service): POST /api/jobs submits a
slide (a path the workers see, or the slide file itself, streamed to the shared upload
folder), GET /api/jobs lists jobs, GET /api/jobs/<id> shows one. Every call needs the write
scope: a job stores instances, and names file paths."""

from __future__ import annotations

import json
import re
import secrets
import shutil
from pathlib import Path
from typing import Protocol

from flask import Blueprint, Response, request

from dicomweb.http.errors import HTTPError
from dicomweb.service import Service
from storage.access import Scope, require
from storage.jobs import JobQueue, JobState

PREFIX = "/api/jobs"
CHUNK = 1 << 20  # bytes read from an upload at a time
# An uploaded slide's file name: its extension tells the converter the format.
FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,200}$")
MULTI_FILE = (".mrxs", ".vsi", ".vms")  # their data lie in companion files: submit a path


class JobsConfig(Protocol):
    """The settings of the job API (declared in wsiarchive's settings)."""

    @property
    def uploads(self) -> Path: ...

    @property
    def max_upload_bytes(self) -> int: ...


def _json(document: object, status: int = 200, location: str | None = None) -> Response:
    response = Response(json.dumps(document, indent=1), status, mimetype="application/json")
    if location:
        response.headers["Location"] = location
    return response


def blueprint(service: Service, queue: JobQueue, config: JobsConfig) -> Blueprint:
    """The routes of the job API over *queue*."""
    routes = Blueprint("jobs", __name__, url_prefix=PREFIX)

    @routes.post("")
    def submit() -> Response:
        who = service.who()
        require(who, Scope.WRITE)
        kind = request.mimetype
        if kind == "application/json":
            document = request.get_json(silent=True)
            if not isinstance(document, dict) or not isinstance(document.get("path"), str):
                raise HTTPError(400, 'a JSON body must be {"path": "<slide file>", "metadata": {}}')
            source, uploaded = document["path"], False
            metadata = document.get("metadata") or {}
        elif kind == "application/octet-stream":
            source, uploaded = str(_receive(config)), True
            metadata = _query_metadata()
        else:
            raise HTTPError(
                415, "POST application/json (a path) or application/octet-stream (the slide)"
            )
        if not isinstance(metadata, dict):
            raise HTTPError(400, "metadata must be a JSON object of slide metadata")
        try:
            job = queue.submit(
                source, json.dumps(metadata) if metadata else "", who=who, uploaded=uploaded
            )
        except BaseException:
            if uploaded:
                shutil.rmtree(Path(source).parent, ignore_errors=True)
            raise
        return _json(job.as_json(), 202, f"{PREFIX}/{job.job_id}")

    @routes.get("")
    def listing() -> Response:
        state_text = request.args.get("state")
        try:
            state = JobState(state_text) if state_text else None
            limit = int(request.args.get("limit", "100"))
        except ValueError as exc:
            states = ", ".join(JobState)
            raise HTTPError(400, f"state must be one of {states}; limit a number") from exc
        jobs = queue.jobs(state, limit, who=service.who())
        return _json({"jobs": [job.as_json() for job in jobs], "depth": queue.depth()})

    @routes.get("/<job_id>")
    def one(job_id: str) -> Response:
        return _json(queue.job(job_id, who=service.who()).as_json())

    return routes


def _query_metadata() -> dict[str, object]:
    text = request.args.get("metadata", "")
    try:
        found = json.loads(text) if text else {}
    except ValueError as exc:
        raise HTTPError(400, f"metadata: not JSON: {exc}") from exc
    if not isinstance(found, dict):
        raise HTTPError(400, "metadata must be a JSON object")
    return found


def _receive(config: JobsConfig) -> Path:
    """Stream the request body to a new folder of the upload directory; never held whole."""
    name = request.args.get("filename", "")
    if not FILENAME.match(name) or ".." in name:
        raise HTTPError(400, "an uploaded slide needs ?filename=<name.ext> (letters, digits, ._-)")
    if name.lower().endswith(MULTI_FILE):
        raise HTTPError(400, f"{name}: a multi-file slide is submitted by its path, not uploaded")
    too_large = HTTPError(413, f"the slide is larger than {config.max_upload_bytes} bytes")
    length = request.content_length
    if length is not None and length > config.max_upload_bytes:
        raise too_large
    folder = config.uploads / secrets.token_hex(16)
    folder.mkdir(parents=True)
    target = folder / name
    written = 0
    try:
        with open(target, "wb") as fp:
            while chunk := request.stream.read(CHUNK):
                written += len(chunk)
                if written > config.max_upload_bytes:
                    raise too_large
                fp.write(chunk)
        if written == 0:
            raise HTTPError(400, "the uploaded slide is empty")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return target
