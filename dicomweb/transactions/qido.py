"""QIDO-RS (PS3.18 §10.6): searches for studies, series and instances."""

from __future__ import annotations

import json

from flask import Response, request

from dicomweb.http.caching import Representation
from dicomweb.http.datasets import wants_xml, xml_parts_response
from dicomweb.http.errors import HTTPError
from dicomweb.http.mediatypes import DICOM_JSON
from dicomweb.http.warning import warning_header
from dicomweb.service import Service
from storage.dicom.document import absolutize
from storage.dicom.levels import Level
from storage.dicom.uids import validate_uid
from storage.dicom.values import MAX_INT64, VALIDATORS, parse_integer, parse_span
from storage.query.keys import attribute_for, by_keyword, parse_key, vr_of
from storage.query.search import MISSING_SPECIMEN_FACTS, Search

# Query parameters that are not matching keys (PS3.18 Table 8.3.4-1 and §8.3.3).
FLAGS = ("fuzzymatching", "emptyvaluematching", "multiplevaluematching")
CONTROL = {"limit", "offset", "includefield", "accept", "charset", MISSING_SPECIMEN_FACTS, *FLAGS}
UTF8 = {"utf-8", "utf8", "iso_ir 192", '"iso_ir 192"', "*"}


def _non_negative(name: str) -> int | None:
    """``limit`` or ``offset``: ASCII digits up to 2^63-1, what the index can take (§8.3.4.4:
    an invalid value is 400)."""
    text = request.args.get(name)
    if text is None:
        return None
    try:
        return parse_integer(text, 0, MAX_INT64)
    except ValueError as exc:
        raise HTTPError(400, f"{name}={exc}; expected a non-negative integer") from exc


def build_search(
    service: Service, level: Level, study: str | None, series: str | None
) -> tuple[Search, list[str]]:
    """A Search from the path and query string, with the Warning texts it gave rise to."""
    search = Search(level, levels=_result_levels(level, study, series))
    for uid, name in ((study, "StudyInstanceUID"), (series, "SeriesInstanceUID")):
        if uid is not None:
            search.where(by_keyword(name), validate_uid(uid, name))
    search.fuzzy = _flag("fuzzymatching")
    search.empty_value_matching = _flag("emptyvaluematching")
    search.multiple_value_matching = _flag("multiplevaluematching")
    search.missing_specimen_facts = _flag(MISSING_SPECIMEN_FACTS)
    _check_charset()
    warnings = _matching_keys(search)
    _include_fields(search)
    limit = _non_negative("limit")
    search.offset = _non_negative("offset") or 0
    maximum = service.config.max_search_results
    if limit is None or limit > maximum:
        if limit is not None:
            warnings.append(f"The limit {limit} exceeds the maximum of {maximum} results")
        limit = maximum
    search.limit = limit
    return search, warnings


def _flag(name: str) -> bool:
    value = request.args.get(name, "false").lower()
    if value not in ("true", "false"):
        raise HTTPError(400, f"{name}={value!r} must be true or false")
    return value == "true"


def _matching_keys(search: Search) -> list[str]:
    """Add the query's matching keys to *search*; the Warning texts for keys ignored."""
    unknown: list[str] = []
    not_matched: list[str] = []
    for key in request.args:
        if key in CONTROL:
            continue
        path = parse_key(key)
        if path is None:
            # §8.3: "The origin server shall ignore any unsupported Query Parameters".
            unknown.append(key)
            continue
        values = request.args.getlist(key)
        if len(values) > 1:
            raise HTTPError(400, f"{key} is repeated; §8.3.4.1 allows each attribute once")
        attribute = attribute_for(path)
        if attribute is None:
            # Not kept by the index: its value is ignored for matching but the attribute is
            # returned (PS3.4 C.2.2.1.3, optional keys). A DA / TM / DT value must still be
            # one (§8.3: an invalid value of a supported parameter is 400).
            _check_time_value(key, path, values[0])
            not_matched.append(key)
            search.include_other.append(path)
            continue
        search.where(attribute, values[0])
    warnings = []
    if unknown:
        warnings.append(
            "These query parameters are not supported and were ignored: " + ", ".join(unknown)
        )
    if not_matched:
        warnings.append(
            "These attributes are not supported as matching keys; their values were ignored: "
            + ", ".join(not_matched)
        )
    return warnings


def _check_time_value(key: str, path: tuple[int, ...], value: str) -> None:
    vr = vr_of(path[-1])
    if vr in VALIDATORS and value not in ("", '""'):
        try:
            parse_span(value, vr)
        except ValueError as exc:
            raise HTTPError(400, f"{key}={exc}") from exc


def _include_fields(search: Search) -> None:
    """``includefield``: keywords, tags or sequence paths, repeated or comma-separated."""
    for value in request.args.getlist("includefield"):
        for key in (part.strip() for part in value.split(",")):
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


def _result_levels(level: Level, study: str | None, series: str | None) -> set[Level]:
    """PS3.18 §10.6.3: /series carries study attributes, /studies/{s}/instances series
    attributes, /instances both; scoped resources carry only their own level."""
    if level == Level.SERIES:
        return {Level.SERIES} if study else {Level.STUDY, Level.SERIES}
    if level == Level.INSTANCE:
        if series:
            return {Level.INSTANCE}
        if study:
            return {Level.SERIES, Level.INSTANCE}
        return {Level.STUDY, Level.SERIES, Level.INSTANCE}
    return {Level.STUDY}


def _check_charset() -> None:
    """Responses are UTF-8 (Annex F); a client that accepts no UTF-8 cannot be served."""
    requested = request.args.get("charset")
    if requested and not {c.strip().split(";")[0].lower() for c in requested.split(",")} & UTF8:
        raise HTTPError(400, f"charset={requested!r} is not supported; responses are UTF-8")
    accepted = request.headers.get("Accept-Charset")
    if accepted:
        names = {c.strip().split(";")[0].lower() for c in accepted.split(",")}
        if not names & UTF8:
            raise HTTPError(406, f"Accept-Charset {accepted!r} excludes UTF-8, the only charset")


def _url(root: str, uids: tuple[str, ...]) -> str:
    names = ("studies", "series", "instances")
    return root + "".join(f"/{name}/{uid}" for name, uid in zip(names, uids, strict=False))


def search(
    service: Service, level: Level, study: str | None = None, series: str | None = None
) -> Response:
    """GET /studies, /series, /instances and their scoped forms."""
    xml = wants_xml(multipart_xml=True)
    search_, warnings = build_search(service, level, study, series)
    page = service.archive.search(search_, who=service.who())
    root = service.root()
    results = []
    for match in page.results:
        dataset = absolutize(match.dataset, root)
        dataset["00081190"] = {"vr": "UR", "Value": [_url(root, match.uids)]}
        dataset["00080056"] = {"vr": "CS", "Value": ["ONLINE"]}
        results.append(dict(sorted(dataset.items())))
    if page.remaining:
        # PS3.18 §10.6.3.2 (paging): tell the client more results can be requested.
        many = f"at least {page.remaining}" if page.capped else str(page.remaining)
        warnings.append(f"There are {many} additional results that can be requested")
    headers = warning_header(warnings, root)
    if xml:
        response = xml_parts_response(results)
        response.headers.update(headers)
        return response
    # A weak ETag of the results: a viewer polling a study for new annotations every few
    # seconds (web/src/annotations) keeps the last answer, revalidates with If-None-Match and
    # gets 304 until something changed. Still no-store (the security headers' default):
    # the browser's disk keeps no search results.
    body = json.dumps(results)
    representation = Representation(body, None, "search", *warnings, weak=True)
    validators = representation.headers()
    validators.pop("Cache-Control")
    if representation.unchanged():
        return Response(status=304, headers=validators)
    headers.update(validators)
    return Response(body, content_type=DICOM_JSON, headers=headers)
