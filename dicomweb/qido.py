"""QIDO-RS (PS3.18 §10.6): searches for studies, series and instances."""

from __future__ import annotations

import json

from flask import Response, request
from pydicom.datadict import tag_for_keyword

from dicomweb.errors import HTTPError
from dicomweb.mediatypes import DICOM_JSON
from dicomweb.responses import wants_xml, xml_parts_response
from dicomweb.service import Service
from storage import query
from storage.query import ATTRIBUTES, INSTANCE, SERIES, STUDY, Search, attribute_for
from storage.uid import validate_uid

CONTROL = {"limit", "offset", "includefield", "fuzzymatching", "accept", "charset"}
MAX_LIMIT = 10000


def _int_param(name: str, default: int | None) -> int | None:
    text = request.args.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit():
        raise HTTPError(400, f"{name}={text!r} is not a non-negative integer")
    return int(text)


def build_search(level: str, study: str | None, series: str | None) -> tuple[Search, list[str]]:
    """A Search from the query string; returns it with the Warning texts it gave rise to."""
    search = Search(level)
    warnings: list[str] = []
    if study is not None:
        search.filters.append(
            (ATTRIBUTES[tag_for_keyword("StudyInstanceUID")], validate_uid(study))
        )
    if series is not None:
        search.filters.append(
            (ATTRIBUTES[tag_for_keyword("SeriesInstanceUID")], validate_uid(series))
        )
    for key in request.args:
        if key in CONTROL:
            continue
        attribute = attribute_for(key)
        if attribute is None:
            raise HTTPError(400, f"{key} is not a supported matching key")
        for value in request.args.getlist(key):
            search.filters.append((attribute, value))
    for value in request.args.getlist("includefield"):
        for key in value.split(","):
            key = key.strip()
            if key == "all":
                search.include.extend(ATTRIBUTES.values())
                continue
            attribute = attribute_for(key)
            if attribute is None:
                warnings.append(f"includefield {key} is not supported and was ignored")
            else:
                search.include.append(attribute)
    search.limit = _int_param("limit", None)
    search.offset = _int_param("offset", 0) or 0
    if search.limit is not None and search.limit > MAX_LIMIT:
        warnings.append(f"limit {search.limit} was reduced to {MAX_LIMIT}")
        search.limit = MAX_LIMIT
    return search, warnings


def _url(root: str, uids: tuple[str, ...]) -> str:
    names = ("studies", "series", "instances")
    return root + "".join(f"/{name}/{uid}" for name, uid in zip(names, uids, strict=False))


def search(
    service: Service, level: str, study: str | None = None, series: str | None = None
) -> Response:
    """GET /studies, /series, /instances and their scoped forms."""
    if level not in (STUDY, SERIES, INSTANCE):
        raise HTTPError(404, "no such search resource")
    xml = wants_xml(multipart_xml=True)
    search_, warnings = build_search(level, study, series)
    results = query.run(service.archive.index.engine, search_)
    root = service.root()
    for dataset in results:
        uids = dataset.pop("_uids")
        dataset["00081190"] = {"vr": "UR", "Value": [_url(root, uids)]}
        if level in (INSTANCE, SERIES):
            dataset["0020000D"] = {"vr": "UI", "Value": [uids[0]]}
        if level == INSTANCE:
            dataset["0020000E"] = {"vr": "UI", "Value": [uids[1]]}
        dataset["00080056"] = {"vr": "CS", "Value": ["ONLINE"]}
    headers = {}
    if warnings:
        headers["Warning"] = ", ".join(f'299 {root} "{w}"' for w in warnings)
    if xml:
        response = xml_parts_response(results)
        response.headers.update(headers)
        return response
    body = json.dumps([dict(sorted(d.items())) for d in results])
    return Response(body, content_type=DICOM_JSON, headers=headers)
