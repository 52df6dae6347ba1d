"""The Retrieve Capabilities transaction (PS3.18 §8.9, Annex H): OPTIONS answered with a WADL
(or JSON) description of what this origin server implements."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

from flask import Response, request

from dicomweb.errors import HTTPError
from dicomweb.mediatypes import DICOM, DICOM_JSON, DICOM_XML, OCTET_STREAM, requested_ranges
from storage.query import INSTANCE, REGISTRY, SERIES, STUDY
from storage.rendering import ICC_VALUES, RENDERED_TYPES

WADL = "application/vnd.sun.wadl+xml"
SEARCH_STATUS = "200 400 406 503"
RETRIEVE_STATUS = "200 400 404 406 503"
STORE_STATUS = "200 202 400 409 413 415 503"
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


@dataclass
class Param:
    name: str
    style: str = "query"
    options: list[str] = field(default_factory=list)
    default: str | None = None
    repeating: bool = False


@dataclass
class Method:
    name: str  # HTTP method
    id: str  # noqa: A003 (the WADL attribute)
    params: list[Param]
    representations: list[str]
    status: str


@dataclass
class Resource:
    path: str
    methods: list[Method] = field(default_factory=list)
    children: list[Resource] = field(default_factory=list)


def _search_params(level: str) -> list[Param]:
    levels = {
        STUDY: ("patient", STUDY),
        SERIES: ("patient", STUDY, SERIES),
        INSTANCE: ("patient", STUDY, SERIES, INSTANCE),
    }[level]
    params = [
        Param("Accept", "header", METADATA_TYPES, DICOM_JSON),
        Param("limit"),
        Param("offset"),
        Param("includefield", options=["all"], repeating=True),
        Param("fuzzymatching", options=["true", "false"], default="false"),
        Param("emptyvaluematching", options=["true", "false"], default="false"),
        Param("multiplevaluematching", options=["true", "false"], default="false"),
    ]
    for attribute in REGISTRY:
        if attribute.level in levels and attribute.kind != "computed":
            params.append(Param(attribute.keyword, repeating=attribute.kind == "uid"))
            params.append(Param(attribute.key, repeating=attribute.kind == "uid"))
    params.append(Param("ModalitiesInStudy"))
    return params


def _search(level: str, id_: str) -> Method:
    return Method("GET", id_, _search_params(level), METADATA_TYPES, SEARCH_STATUS)


def _retrieve(id_: str) -> Method:
    accept = Param(
        "Accept",
        "header",
        [f"multipart/related; type={DICOM}", DICOM],
        f"multipart/related; type={DICOM}",
    )
    return Method(
        "GET", id_, [accept], [f"multipart/related; type={DICOM}", DICOM], RETRIEVE_STATUS
    )


def _metadata(id_: str) -> Resource:
    accept = Param("Accept", "header", METADATA_TYPES, DICOM_JSON)
    return Resource("metadata", [Method("GET", id_, [accept], METADATA_TYPES, RETRIEVE_STATUS)])


def _store(id_: str) -> Method:
    content = Param("Content-Type", "header", [f"multipart/related; type={DICOM}", DICOM])
    accept = Param("Accept", "header", [DICOM_JSON, DICOM_XML], DICOM_JSON)
    return Method("POST", id_, [content, accept], [DICOM_JSON, DICOM_XML], STORE_STATUS)


RENDERED_STATUS = "200 304 400 404 406 413 503"


def _rendered(level: str) -> list[Resource]:
    """The Rendered and Thumbnail children of a study, series, instance or frame list."""
    types = list(RENDERED_TYPES) + [f"multipart/related; type={t}" for t in RENDERED_TYPES]
    accept = Param("Accept", "header", types, "image/jpeg")
    rendered = [
        accept,
        Param("viewport"),
        Param("quality"),
        Param("window"),
        Param("iccprofile", options=list(ICC_VALUES)),
        Param("annotation", options=["patient", "technique"]),
    ]
    thumbnail = [accept, Param("viewport")]
    return [
        Resource("rendered", [Method("GET", f"Retrieve{level}Rendered", rendered, types,
                                     RENDERED_STATUS)]),
        Resource("thumbnail", [Method("GET", f"Retrieve{level}Thumbnail", thumbnail,
                                      list(RENDERED_TYPES), RENDERED_STATUS)]),
    ]  # fmt: skip


def service_tree() -> list[Resource]:
    """Everything this server implements, as the Annex H Table H-1 tree."""
    pixels = [Param("Accept", "header", PIXEL_TYPES, f"multipart/related; type={OCTET_STREAM}")]
    instance = Resource(
        "{SOPInstanceUID}",
        [_retrieve("RetrieveInstance")],
        [
            _metadata("RetrieveInstanceMetadata"),
            Resource(
                "frames/{framelist}",
                [Method("GET", "RetrieveFrames", pixels, PIXEL_TYPES, RETRIEVE_STATUS)],
                _rendered("Frames"),
            ),
            *_rendered("Instance"),
            Resource(
                "bulkdata/{BulkDataReference}",
                [Method("GET", "RetrieveBulkdata", pixels, PIXEL_TYPES, RETRIEVE_STATUS)],
            ),
        ],
    )
    series = Resource(
        "{SeriesInstanceUID}",
        [_retrieve("RetrieveSeries")],
        [
            _metadata("RetrieveSeriesMetadata"),
            *_rendered("Series"),
            Resource("instances", [_search(INSTANCE, "SearchForStudySeriesInstances")], [instance]),
        ],
    )
    study = Resource(
        "{StudyInstanceUID}",
        [_retrieve("RetrieveStudy"), _store("StoreStudyInstances")],
        [
            _metadata("RetrieveStudyMetadata"),
            *_rendered("Study"),
            Resource("series", [_search(SERIES, "SearchForStudySeries")], [series]),
            Resource("instances", [_search(INSTANCE, "SearchForStudyInstances")]),
        ],
    )
    return [
        Resource(
            "studies", [_search(STUDY, "SearchForStudies"), _store("StoreInstances")], [study]
        ),
        Resource("series", [_search(SERIES, "SearchForSeries")]),
        Resource("instances", [_search(INSTANCE, "SearchForInstances")]),
    ]


def _select(path: str) -> list[Resource]:
    """The subtree for a target resource below the service root (Annex H: the target and
    each of its children)."""
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts:
        return service_tree()
    level = service_tree()
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
        out.append(f"<method name={quoteattr(method.name)} id={quoteattr(method.id)}>")
        out.append("<request>" + "".join(_param_xml(p) for p in method.params) + "</request>")
        ok, *errors = method.status.split()
        reps = "".join(
            f"<representation mediaType={quoteattr(t)}/>" for t in method.representations
        )
        out.append(f'<response status="{ok}">{reps}</response>')
        out.append(f'<response status="{" ".join(errors)}"/>')
        out.append("</method>")
    out += [_resource_xml(child) for child in resource.children]
    out.append("</resource>")
    return "".join(out)


def _resource_json(resource: Resource) -> dict:
    return {
        "path": resource.path,
        "methods": [
            {
                "name": m.name,
                "id": m.id,
                "request": {"params": [p.__dict__ for p in m.params]},
                "responses": [
                    {"status": s, "representations": m.representations} for s in m.status.split()
                ],
            }
            for m in resource.methods
        ],
        "resources": [_resource_json(child) for child in resource.children],
    }


def describe(root: str, path: str) -> Response:
    """OPTIONS {root}{path}: the Capabilities Description of the target resource."""
    resources = _select(path)
    kind = None
    for media_range in requested_ranges(
        request.headers.get("Accept"), request.args.getlist("accept")
    ):
        if media_range.media_type in (WADL, "application/xml", "*/*", "application/*"):
            kind = "wadl"
        elif media_range.media_type == "application/json":
            kind = "json"
        if kind:
            break
    if kind is None:
        raise HTTPError(406, f"the capabilities are available as {WADL} or application/json")
    allow = sorted({m.name for r in resources for m in r.methods} | {"OPTIONS"})
    headers = {"Allow": ", ".join(allow)}
    if kind == "json":
        body = {
            "application": {
                "resources": {"base": root, "resources": [_resource_json(r) for r in resources]}
            }
        }
        return Response(json.dumps(body), content_type="application/json", headers=headers)
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<application xmlns="http://wadl.dev.java.net/2009/02">'
        f"<resources base={quoteattr(root)}>"
        + "".join(_resource_xml(r) for r in resources)
        + "</resources></application>\n"
    )
    return Response(document, content_type=WADL, headers=headers)
