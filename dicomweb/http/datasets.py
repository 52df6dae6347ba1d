"""Encoding DICOM JSON datasets as the response the client asked for (JSON or XML)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import StrEnum

from flask import Response, request

from dicomweb.http.dicomxml import to_xml
from dicomweb.http.errors import HTTPError
from dicomweb.http.mediatypes import DICOM_JSON, DICOM_XML, JSON, MediaRange, requested_ranges
from dicomweb.http.multipart import new_boundary, write_parts
from dicomweb.http.streaming import stream
from storage.dicom.document import JsonObject


class Encoding(StrEnum):
    """The two encodings of DICOM data sets on the web (PS3.18 Annex F, PS3.19 Annex A)."""

    JSON = "json"
    XML = "xml"


def wants_xml(multipart_xml: bool) -> bool:
    """Whether the client prefers DICOM XML over DICOM JSON for a dataset response.

    *multipart_xml*: XML comes as ``multipart/related; type="application/dicom+xml"``
    (metadata, QIDO) rather than a single ``application/dicom+xml`` (STOW response).
    """
    ranges = requested_ranges(request.headers.get("Accept"), request.args.getlist("accept"))
    for media_range in ranges:
        kind = _kind(media_range, multipart_xml)
        if kind is not None:
            return kind == Encoding.XML
    raise HTTPError(
        406,
        f"this resource is available as {DICOM_JSON}"
        + (f' or multipart/related; type="{DICOM_XML}"' if multipart_xml else f" or {DICOM_XML}"),
    )


def _kind(media_range: MediaRange, multipart_xml: bool) -> Encoding | None:
    if media_range.is_multipart:
        return Encoding.XML if media_range.part_type == DICOM_XML and multipart_xml else None
    media_type = media_range.media_type
    if media_type in (DICOM_JSON, JSON, "*/*", "application/*"):
        return Encoding.JSON
    if media_type == DICOM_XML:
        return Encoding.XML
    return None


def dataset_response(
    dataset: JsonObject, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A single dataset (e.g. the STOW response module) as JSON or XML."""
    if wants_xml(multipart_xml=False):
        body, content_type = to_xml(dataset), DICOM_XML
    else:
        body, content_type = json.dumps(dataset).encode("utf-8"), DICOM_JSON
    return Response(body, status=status, headers=headers, content_type=content_type)


def xml_parts_response(datasets: Iterable[JsonObject], what: str = "datasets") -> Response:
    """Several datasets as ``multipart/related; type="application/dicom+xml"``, streamed."""
    boundary = new_boundary()
    parts = (({"Content-Type": DICOM_XML}, [to_xml(d)]) for d in datasets)
    return stream(
        write_parts(boundary, parts),
        what,
        content_type=f'multipart/related; type="{DICOM_XML}"; boundary={boundary}',
    )
