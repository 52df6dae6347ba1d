"""QIDO-RS (PS3.18 §10.6): searches for studies, series and instances."""

from __future__ import annotations

import json

from flask import Response, request

from dicomweb.errors import HTTPError
from dicomweb.mediatypes import DICOM_JSON
from dicomweb.responses import wants_xml, xml_parts_response
from dicomweb.service import Service
from storage import query
from storage.metadata import absolutize
from storage.query import INSTANCE, SERIES, STUDY, Search, attribute_for, parse_key
from storage.uid import validate_uid

# Query parameters that are not matching keys (PS3.18 Table 8.3.4-1 and §8.3.3).
CONTROL = {"limit", "offset", "includefield", "fuzzymatching", "accept", "charset"}
SCOPE_KEYS = {STUDY: "StudyInstanceUID", SERIES: "SeriesInstanceUID"}


def _non_negative(name: str) -> int | None:
    text = request.args.get(name)
    if text is None:
        return None
    if not text.isdigit():
        raise HTTPError(400, f"{name}={text!r} is not a non-negative integer")
    return int(text)


def build_search(
    service: Service, level: str, study: str | None, series: str | None
) -> tuple[Search, list[str]]:
    """A Search from the path and query string, with the Warning texts it gave rise to."""
    search = Search(level)
    warnings: list[str] = []
    for uid, name in ((study, "StudyInstanceUID"), (series, "SeriesInstanceUID")):
        if uid is not None:
            validate_uid(uid, name)
            attribute = attribute_for(parse_key(name))  # type: ignore[arg-type]
            search.filters.append((attribute, uid))  # type: ignore[arg-type]
    fuzzy = request.args.get("fuzzymatching", "false").lower()
    if fuzzy not in ("true", "false"):
        raise HTTPError(400, f"fuzzymatching={fuzzy!r} must be true or false")
    search.fuzzy = fuzzy == "true"
    ignored: list[str] = []
    for key in request.args:
        if key in CONTROL:
            continue
        path = parse_key(key)
        if path is None:
            raise HTTPError(
                400, f"{key!r} is neither a DICOM keyword nor a tag (as 8 hex digits) nor a "
                "dotted sequence path of them"
            )
        attribute = attribute_for(path)
        if attribute is None:
            ignored.append(key)
            continue
        for value in request.args.getlist(key):
            search.filters.append((attribute, value))
    if ignored:
        warnings.append(
            "The following attributes are not supported as matching keys and were ignored: "
            + ", ".join(ignored)
        )
    for value in request.args.getlist("includefield"):
        for key in value.split(","):
            key = key.strip()
            if not key:
                continue
            if key == "all":
                search.include_all = True
                continue
            path = parse_key(key)
            if path is None:
                raise HTTPError(400, f"includefield {key!r} is neither a DICOM keyword nor a tag")
            attribute = attribute_for(path)
            if attribute is not None:
                search.include.append(attribute)
            else:
                search.include_other.append(path)
    limit = _non_negative("limit")
    search.offset = _non_negative("offset") or 0
    maximum = service.max_results
    if limit is None or limit > maximum:
        if limit is not None:
            warnings.append(f"The limit {limit} exceeds the maximum of {maximum} results")
        limit = maximum
    search.limit = limit
    return search, warnings


def _url(root: str, uids: tuple[str, ...]) -> str:
    names = ("studies", "series", "instances")
    return root + "".join(f"/{name}/{uid}" for name, uid in zip(names, uids, strict=False))


def search(
    service: Service, level: str, study: str | None = None, series: str | None = None
) -> Response:
    """GET /studies, /series, /instances and their scoped forms."""
    xml = wants_xml(multipart_xml=True)
    search_, warnings = build_search(service, level, study, series)
    page = query.run(service.archive.index.engine, search_)
    root = service.root()
    for dataset in page.results:
        uids = dataset.pop("_uids")
        absolutize(dataset, root)
        dataset["00081190"] = {"vr": "UR", "Value": [_url(root, uids)]}
        dataset["00080056"] = {"vr": "CS", "Value": ["ONLINE"]}
    if page.remaining:
        # PS3.18 §10.6.3.2 (paging): tell the client more results can be requested.
        warnings.append(f"There are {page.remaining} additional results that can be requested")
    headers = {}
    if warnings:
        headers["Warning"] = ", ".join(f'299 {root} "{text}"' for text in warnings)
    results = [dict(sorted(d.items())) for d in page.results]
    if xml:
        response = xml_parts_response(results)
        response.headers.update(headers)
        return response
    return Response(json.dumps(results), content_type=DICOM_JSON, headers=headers)
