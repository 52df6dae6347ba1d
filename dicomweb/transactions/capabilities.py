"""The Retrieve Capabilities transaction (PS3.18 §8.9, Annex H): OPTIONS answered with a WADL
(or JSON) description of what this origin server implements, made from the route table."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from xml.sax.saxutils import quoteattr

from flask import Response, request

from dicomweb.http.errors import HTTPError
from dicomweb.http.mediatypes import (
    DICOM,
    DICOM_JSON,
    DICOM_XML,
    OCTET_STREAM,
    requested_ranges,
)
from storage.dicom.levels import Level
from storage.imaging.display import IccProfile, RenderedType
from storage.query.keys import REGISTRY, Kind
from storage.query.search import MISSING_SPECIMEN_FACTS

WADL = "application/vnd.sun.wadl+xml"
SEARCH_STATUS = "200 400 406 503"
RETRIEVE_STATUS = "200 400 404 406 503"
STORE_STATUS = "200 202 400 409 413 415 507"
RENDERED_STATUS = "200 304 400 404 406 413 503"
DELETE_STATUS = "204 400 403 404 503"
UPDATE_STATUS = "200 400 403 404 409 415 503"
CHANGE_FEED_STATUS = "200 400 403 503"
METADATA_TYPES = [DICOM_JSON, f"multipart/related; type={DICOM_XML}"]
PIXEL_TYPES = [
    f"multipart/related; type={t}"
    for t in (
        OCTET_STREAM,
        "image/jpeg",
        "image/jls",
        "image/jp2",
        "image/jpx",
        "image/dicom-rle",
        "image/jphc",
        "image/jxl",
    )
]
# URI template variables (Annex H Table H-1) of the route table's path variables.
TEMPLATE = {
    "study": "{StudyInstanceUID}",
    "series": "{SeriesInstanceUID}",
    "instance": "{SOPInstanceUID}",
    "frames": "{framelist}",
    "path": "{BulkDataReference}",
}


@dataclass(frozen=True)
class Param:
    name: str
    style: str = "query"
    options: list[str] = field(default_factory=list)
    default: str | None = None
    repeating: bool = False


@dataclass(frozen=True)
class Description:
    """What the capabilities say of one method of one resource."""

    params: list[Param]
    representations: list[str]
    status: str


@dataclass
class Method:
    name: str  # HTTP method
    id: str  # the WADL attribute
    description: Description


@dataclass
class Resource:
    path: str
    methods: list[Method] = field(default_factory=list)
    children: list[Resource] = field(default_factory=list)


class Described(Protocol):
    """What the tree is made of: a route's rule below the service root, its HTTP method, its
    WADL id and its description (dicomweb.routes.Route)."""

    @property
    def rule(self) -> str: ...

    @property
    def method(self) -> str: ...

    @property
    def id(self) -> str: ...  # noqa: A003

    @property
    def description(self) -> Description: ...


# -- the descriptions of each kind of method -----------------------------------------------------
def search(level: Level) -> Description:
    params = [
        Param("Accept", "header", METADATA_TYPES, DICOM_JSON),
        Param("limit"),
        Param("offset"),
        Param("includefield", options=["all"], repeating=True),
        Param("fuzzymatching", options=["true", "false"], default="false"),
        Param("emptyvaluematching", options=["true", "false"], default="false"),
        Param("multiplevaluematching", options=["true", "false"], default="false"),
        Param(MISSING_SPECIMEN_FACTS, options=["true", "false"], default="false"),
    ]
    for attribute in REGISTRY:
        if attribute.level.depth <= level.depth and attribute.kind != Kind.COMPUTED:
            repeating = attribute.kind == Kind.UID
            params.append(Param(attribute.keyword, repeating=repeating))
            params.append(Param(attribute.key, repeating=repeating))
    params.append(Param("ModalitiesInStudy"))
    return Description(params, METADATA_TYPES, SEARCH_STATUS)


def retrieve() -> Description:
    types = [f"multipart/related; type={DICOM}", DICOM]
    accept = Param("Accept", "header", types, types[0])
    return Description([accept], types, RETRIEVE_STATUS)


def metadata() -> Description:
    accept = Param("Accept", "header", METADATA_TYPES, DICOM_JSON)
    return Description([accept], METADATA_TYPES, RETRIEVE_STATUS)


def pixels() -> Description:
    accept = Param("Accept", "header", PIXEL_TYPES, f"multipart/related; type={OCTET_STREAM}")
    return Description([accept], PIXEL_TYPES, RETRIEVE_STATUS)


def store() -> Description:
    content = Param("Content-Type", "header", [f"multipart/related; type={DICOM}", DICOM])
    accept = Param("Accept", "header", [DICOM_JSON, DICOM_XML], DICOM_JSON)
    return Description([content, accept], [DICOM_JSON, DICOM_XML], STORE_STATUS)


def delete() -> Description:
    return Description([], [], DELETE_STATUS)


def update() -> Description:
    content = Param("Content-Type", "header", ["application/json"])
    return Description([content], ["application/json"], UPDATE_STATUS)


def change_feed() -> Description:
    params = [
        Param("startTime"),
        Param("endTime"),
        Param("offset", default="0"),
        Param("limit", default="100"),
        Param("includeMetadata", options=["true", "false"], default="true"),
    ]
    return Description(params, ["application/json"], CHANGE_FEED_STATUS)


def change_feed_latest() -> Description:
    params = [Param("includeMetadata", options=["true", "false"], default="true")]
    return Description(params, ["application/json"], CHANGE_FEED_STATUS)


def _rendered_types() -> list[str]:
    return list(RenderedType) + [f"multipart/related; type={t}" for t in RenderedType]


def rendered() -> Description:
    types = _rendered_types()
    params = [
        Param("Accept", "header", types, RenderedType.JPEG),
        Param("viewport"),
        Param("quality"),
        Param("window"),
        Param("iccprofile", options=list(IccProfile)),
        Param("annotation", options=["patient", "technique"]),
    ]
    return Description(params, types, RENDERED_STATUS)


def thumbnail() -> Description:
    accept = Param("Accept", "header", _rendered_types(), RenderedType.JPEG)
    return Description([accept, Param("viewport")], list(RenderedType), RENDERED_STATUS)


# -- the tree ------------------------------------------------------------------------------------
_VARIABLE = re.compile(r"<(?:\w+:)?(\w+)>")


def tree(routes: Sequence[Described]) -> list[Resource]:
    """The Annex H Table H-1 tree of *routes*:
    one resource per path segment, a literal segment with no methods of its own joined to
    its only child (``frames/{framelist}``)."""
    root = Resource("")
    for route in routes:
        node = root
        for segment in route.rule.strip("/").split("/"):
            path = _VARIABLE.sub(lambda m: TEMPLATE[m.group(1)], segment)
            child = next((c for c in node.children if c.path == path), None)
            if child is None:
                child = Resource(path)
                node.children.append(child)
            node = child
        node.methods.append(Method(route.method, route.id, route.description))
    return [_joined(child) for child in root.children]


def _joined(resource: Resource) -> Resource:
    children = [_joined(child) for child in resource.children]
    if not resource.methods and len(children) == 1:
        only = children[0]
        return Resource(f"{resource.path}/{only.path}", only.methods, only.children)
    return Resource(resource.path, resource.methods, children)


def _select(resources: list[Resource], path: str) -> list[Resource]:
    """The subtree for a target resource below the service root (Annex H: the target and
    each of its children)."""
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts:
        return resources
    level = resources
    found: Resource | None = None
    index = 0
    while index < len(parts):
        part = parts[index]
        match = None
        for resource in level:
            names = resource.path.split("/")
            literal = names[0]
            if literal == part or (literal.startswith("{") and part[:1].isdigit()):
                match = resource
                index += len(names)
                break
        if match is None:
            raise HTTPError(404, f"no resource /{path.strip('/')} in this service")
        found, level = match, match.children
    assert found is not None
    return [Resource("/".join(parts), found.methods, found.children)]


def _param_xml(param: Param) -> str:
    attrs = f"name={quoteattr(param.name)} style={quoteattr(param.style)}"
    if param.default is not None:
        attrs += f" default={quoteattr(param.default)}"
    if param.repeating:
        attrs += ' repeating="true"'
    if not param.options:
        return f"<param {attrs}/>"
    options = "".join(f"<option value={quoteattr(o)}/>" for o in param.options)
    return f"<param {attrs}>{options}</param>"


def _resource_xml(resource: Resource) -> str:
    out = [f"<resource path={quoteattr(resource.path)}>"]
    for method in resource.methods:
        described = method.description
        out.append(f"<method name={quoteattr(method.name)} id={quoteattr(method.id)}>")
        out.append("<request>" + "".join(_param_xml(p) for p in described.params) + "</request>")
        ok, *errors = described.status.split()
        reps = "".join(
            f"<representation mediaType={quoteattr(t)}/>" for t in described.representations
        )
        out.append(f'<response status="{ok}">{reps}</response>')
        out.append(f'<response status="{" ".join(errors)}"/>')
        out.append("</method>")
    out += [_resource_xml(child) for child in resource.children]
    out.append("</resource>")
    return "".join(out)


def _resource_json(resource: Resource) -> dict[str, Any]:
    return {
        "path": resource.path,
        "methods": [
            {
                "name": m.name,
                "id": m.id,
                "request": {"params": [p.__dict__ for p in m.description.params]},
                "responses": [
                    {"status": s, "representations": m.description.representations}
                    for s in m.description.status.split()
                ],
            }
            for m in resource.methods
        ],
        "resources": [_resource_json(child) for child in resource.children],
    }


def describe(resources: list[Resource], root: str, path: str) -> Response:
    """OPTIONS {root}{path}: the Capabilities Description of the target resource."""
    selected = _select(resources, path)
    kind: str | None = None
    for media_range in requested_ranges(
        request.headers.get("Accept"), request.args.getlist("accept")
    ):
        if media_range.media_type in (WADL, "application/xml", "*/*", "application/*"):
            kind = WADL
        elif media_range.media_type == "application/json":
            kind = "application/json"
        if kind:
            break
    if kind is None:
        raise HTTPError(406, f"the capabilities are available as {WADL} or application/json")
    allow = sorted({m.name for r in selected for m in r.methods} | {"OPTIONS"})
    headers = {"Allow": ", ".join(allow)}
    if kind == "application/json":
        body = {
            "application": {
                "resources": {"base": root, "resources": [_resource_json(r) for r in selected]}
            }
        }
        return Response(json.dumps(body), content_type="application/json", headers=headers)
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<application xmlns="http://wadl.dev.java.net/2009/02">'
        f"<resources base={quoteattr(root)}>"
        + "".join(_resource_xml(r) for r in selected)
        + "</resources></application>\n"
    )
    return Response(document, content_type=WADL, headers=headers)
