"""WADO-RS (PS3.18 §10.4): whole instances (as stored or transcoded) and metadata."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from flask import Response, request

from dicomweb.http.caching import Representation
from dicomweb.http.datasets import wants_xml, xml_parts_response
from dicomweb.http.mediatypes import (
    DICOM,
    DICOM_JSON,
    Choice,
    MediaRange,
    Parts,
    negotiate,
    not_acceptable,
    requested_ranges,
)
from dicomweb.http.multipart import closing, new_boundary, part_header
from dicomweb.http.ranges import blob_reader, ranged_response
from dicomweb.http.streaming import stream
from dicomweb.service import Service
from storage.dicom.document import absolutize, instance_path, load, render
from storage.records import StoredRecord


def accepted() -> tuple[MediaRange, ...]:
    """The media ranges of the request (the accept parameter before the Accept header)."""
    return requested_ranges(request.headers.get("Accept"), request.args.getlist("accept"))


def _instance_offers(service: Service, record: StoredRecord) -> list[tuple[str, str]]:
    """The stored form first, then every transfer syntax the instance can be transcoded to."""
    offers = [(DICOM, record.transfer_syntax)]
    if record.number_of_frames:
        offers += [(DICOM, ts) for ts in service.archive.transcode_targets(record)]
    return offers


def retrieve_instances(
    service: Service, study: str, series: str | None = None, instance: str | None = None
) -> Response:
    """GET /studies/{s}[/series/{se}[/instances/{i}]]: Part-10 instances, as stored or
    transcoded to the transfer syntax the client accepts (§8.7.3.5.2)."""
    records = service.archive.records(study, series, instance, who=service.who())
    ranges = accepted()
    single = instance is not None
    choices: list[Choice] = []
    for record in records:
        offered = _instance_offers(service, record)
        choice = negotiate(ranges, offered, Parts.OPTIONAL if single else Parts.REQUIRED)
        if choice is None:
            raise not_acceptable(f"instance {record.instance}", offered)
        choices.append(choice)
    if single and not choices[0].multipart:
        return _single_instance(service, records[0], choices[0].transfer_syntax)
    return _multipart_instances(service, records, choices)


def _single_instance(service: Service, record: StoredRecord, target: str) -> Response:
    content_type = f"{DICOM}; transfer-syntax={target}"
    representation = Representation(
        record.blob_key, record.stored_at, "instance", target, max_age=service.config.cache_max_age
    )
    if representation.unchanged():
        return representation.not_modified()
    if target == record.transfer_syntax:
        # The stored file: Range requests let a client resume a large download.
        reader = blob_reader(lambda ranges: service.archive.read_ranges(record, ranges))
        return ranged_response(reader, record.size, content_type, representation)
    body = service.archive.instance_stream(record, target)
    return stream(
        body.chunks,
        f"instance {record.instance} as {target}",
        body.length,
        content_type=content_type,
        headers=representation.headers(),
    )


def _multipart_instances(
    service: Service, records: list[StoredRecord], choices: list[Choice]
) -> Response:
    """One part per instance, streamed; with a Content-Length when every part's is known."""
    root = service.root()
    boundary = new_boundary()
    heads: list[bytes] = []
    for record, choice in zip(records, choices, strict=True):
        target = choice.transfer_syntax
        headers = {
            "Content-Type": f"{DICOM}; transfer-syntax={target}",
            "Content-Location": root + instance_path(record.study, record.series, record.instance),
        }
        if target == record.transfer_syntax:
            headers["Content-Length"] = str(record.size)
        heads.append(part_header(boundary, headers))
    stored = [
        choice.transfer_syntax == r.transfer_syntax
        for r, choice in zip(records, choices, strict=True)
    ]
    length = None
    if all(stored):
        length = sum(
            len(head) + record.size + 2 for head, record in zip(heads, records, strict=True)
        )
        length += len(closing(boundary))

    def parts() -> Iterator[bytes]:
        for head, record, choice in zip(heads, records, choices, strict=True):
            yield head
            yield from service.archive.instance_stream(record, choice.transfer_syntax).chunks
            yield b"\r\n"
        yield closing(boundary)

    syntaxes = {choice.transfer_syntax for choice in choices}
    content_type = f'multipart/related; type="{DICOM}"; boundary={boundary}'
    if len(syntaxes) == 1:
        content_type += f"; transfer-syntax={syntaxes.pop()}"
    what = f"{len(records)} instances of study {records[0].study}"
    return stream(parts(), what, length, content_type=content_type)


def retrieve_metadata(
    service: Service, study: str, series: str | None = None, instance: str | None = None
) -> Response:
    """GET .../metadata: DICOM JSON array (default) or multipart DICOM XML, with a weak ETag
    of the instances it describes, so that a viewer opening a slide again revalidates the
    series metadata (304) instead of fetching it again."""
    records = service.archive.records(study, series, instance, who=service.who())
    root = service.root()
    xml = wants_xml(multipart_xml=True)
    representation = metadata_representation(records, root, xml)
    if representation.unchanged():
        return representation.not_modified()
    headers = representation.headers()
    documents: Iterable[bytes] = service.archive.documents(records)
    what = f"metadata of {len(records)} instances of study {study}"
    if xml:
        response = xml_parts_response((absolutize(load(d), root) for d in documents), what)
        response.headers.update(headers)
        return response
    return stream(render(documents, root), what, content_type=DICOM_JSON, headers=headers)


def metadata_representation(records: list[StoredRecord], root: str, xml: bool) -> Representation:
    """Validators of the metadata of *records*: fixed by which instances they are and their
    blobs (storing an instance again gives it a new blob), the root its BulkDataURIs name and
    the format. No Last-Modified: a deleted instance changes the set but no date. Clients
    revalidate every time (no-cache): a series gains instances."""
    instances = sorted(f"{r.instance}:{r.blob_key}" for r in records)
    return Representation("\x1e".join(instances), None, "metadata", root, xml, weak=True)
