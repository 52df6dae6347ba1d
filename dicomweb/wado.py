"""WADO-RS (PS3.18 §10.4): instances, metadata, frames and bulk data."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from flask import Response, request

from dicomweb.caching import Representation
from dicomweb.errors import HTTPError
from dicomweb.mediatypes import (
    DEFLATED_LE,
    DICOM,
    DICOM_JSON,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    OCTET_STREAM,
    PIXEL_MEDIA_TYPE,
    Choice,
    negotiate,
    not_acceptable,
    requested_ranges,
)
from dicomweb.multipart import closing, new_boundary, part_header, write_parts
from dicomweb.responses import wants_xml, xml_parts_response
from dicomweb.service import Service
from storage.errors import BlobMissing, NotFound
from storage.index import StoredRecord
from storage.metadata import absolutize, instance_path, load, render
from storage.retrieve import FrameReader, blob_chunks, header_element, parse_tag_path

PIXEL_DATA = 0x7FE00010


def _ranges():  # type: ignore[no-untyped-def]
    return requested_ranges(request.headers.get("Accept"), request.args.getlist("accept"))


def _records(service: Service, study: str, series: str | None, instance: str | None):  # type: ignore[no-untyped-def]
    return service.archive.records(study, series, instance)


# -- instances ---------------------------------------------------------------------------------
def retrieve_instances(
    service: Service, study: str, series: str | None = None, instance: str | None = None
) -> Response:
    """GET /studies/{s}[/series/{se}[/instances/{i}]]: Part-10 instances as stored."""
    records = _records(service, study, series, instance)
    ranges = _ranges()
    single = instance is not None
    choices: list[Choice] = []
    for record in records:
        offered = [(DICOM, record.transfer_syntax)]
        choice = negotiate(ranges, offered, "optional" if single else "required")
        if choice is None:
            raise not_acceptable(f"instance {record.instance}", offered)
        choices.append(choice)
    root = service.root()
    if single and not choices[0].multipart:
        record = records[0]
        return Response(
            blob_chunks(service.archive.blobs, record.blob_key),
            content_type=f"{DICOM}; transfer-syntax={record.transfer_syntax}",
            headers={"Content-Length": str(record.size)},
        )

    def parts() -> Iterator[tuple[dict[str, str], Iterable[bytes]]]:
        for record in records:
            headers = {
                "Content-Type": f"{DICOM}; transfer-syntax={record.transfer_syntax}",
                "Content-Length": str(record.size),
                "Content-Location": root
                + instance_path(record.study, record.series, record.instance),
            }
            yield headers, blob_chunks(service.archive.blobs, record.blob_key)

    boundary = new_boundary()
    syntaxes = {record.transfer_syntax for record in records}
    content_type = f'multipart/related; type="{DICOM}"; boundary={boundary}'
    if len(syntaxes) == 1:
        content_type += f"; transfer-syntax={syntaxes.pop()}"
    return Response(write_parts(boundary, parts()), content_type=content_type)


# -- metadata ----------------------------------------------------------------------------------
def retrieve_metadata(
    service: Service, study: str, series: str | None = None, instance: str | None = None
) -> Response:
    """GET .../metadata: DICOM JSON array (default) or multipart DICOM XML."""
    records = _records(service, study, series, instance)
    root = service.root()
    documents = service.archive.documents(records)
    if wants_xml(multipart_xml=True):
        return xml_parts_response(absolutize(load(d), root) for d in documents)
    return Response(render(documents, root), content_type=DICOM_JSON)


# -- frames ------------------------------------------------------------------------------------
def parse_frame_list(text: str) -> list[int]:
    """``1,2,5`` → [1, 2, 5]; 400 unless every number is a positive integer."""
    numbers = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise HTTPError(
                400,
                f"frame list {text!r} is malformed: expected positive integers separated by ','",
            )
        numbers.append(int(item))
    return numbers


def _pixel_offers(record: StoredRecord) -> list[tuple[str, str]]:
    stored = (PIXEL_MEDIA_TYPE.get(record.transfer_syntax, OCTET_STREAM), record.transfer_syntax)
    offers = [stored]
    # Native frames are the same bytes whatever the VR encoding of the data set was.
    if record.transfer_syntax in (IMPLICIT_VR_LE, DEFLATED_LE):
        offers = [(OCTET_STREAM, EXPLICIT_VR_LE)]
    return offers


def _frame_reader(service: Service, record: StoredRecord) -> FrameReader:
    return FrameReader(service.archive.blobs, record, service.frame_tables.get(record))


def _on_instance(service: Service, study: str, series: str, instance: str, respond) -> Response:  # type: ignore[no-untyped-def]
    """respond(record) with the cached record of an instance, or, if its blob has gone since
    (deleted or stored again), with the record the index has now (see InstanceCache)."""
    record = service.instance(study, series, instance)
    try:
        return respond(record)
    except BlobMissing:
        return respond(service.instance(study, series, instance, fresh=True))


EAGER_FRAMES = 64  # up to this many frames are read before the response starts


def _frames_response(
    service: Service, record: StoredRecord, numbers: list[int], location: str | None
) -> Response:
    reader = _frame_reader(service, record)
    reader.check(numbers)
    offered = _pixel_offers(record)
    choice = negotiate(_ranges(), offered, "optional" if len(numbers) == 1 else "required")
    if choice is None:
        raise not_acceptable(f"the frames of instance {record.instance}", offered)
    part_type = choice.media_type
    if choice.media_type != OCTET_STREAM or choice.transfer_syntax != EXPLICIT_VR_LE:
        part_type += f"; transfer-syntax={choice.transfer_syntax}"
    representation = Representation(
        record,
        "frames",
        ",".join(map(str, numbers)),
        part_type,
        choice.multipart,
        max_age=service.cache_max_age,
    )
    if representation.unchanged():
        service.archive.blobs.size(record.blob_key)  # BlobMissing if the record is stale
        return representation.not_modified()
    headers = representation.headers()
    base = service.root() + instance_path(record.study, record.series, record.instance)
    first = reader.read(numbers[0])  # a stale record fails here, before anything is sent
    if not choice.multipart:
        headers["Content-Location"] = location or f"{base}/frames/{numbers[0]}"
        return Response(first, content_type=part_type, headers=headers)

    boundary = representation.boundary

    def part(number: int, data: bytes) -> list[bytes]:
        head = {
            "Content-Type": part_type,
            "Content-Length": str(len(data)),
            "Content-Location": location or f"{base}/frames/{number}",
        }
        return [part_header(boundary, head), data, b"\r\n"]

    content_type = f'multipart/related; type="{choice.media_type}"; boundary={boundary}'
    if len(numbers) <= EAGER_FRAMES:
        body = part(numbers[0], first)
        for number in numbers[1:]:
            body += part(number, reader.read(number))
        body.append(closing(boundary))
        headers["Content-Length"] = str(sum(map(len, body)))
        return Response(body, content_type=content_type, headers=headers)

    def stream() -> Iterator[bytes]:
        yield from part(numbers[0], first)
        for number in numbers[1:]:
            yield from part(number, reader.read(number))
        yield closing(boundary)

    return Response(stream(), content_type=content_type, headers=headers)


def retrieve_frames(
    service: Service, study: str, series: str, instance: str, frames: str
) -> Response:
    """GET .../instances/{i}/frames/{list}: one part per frame, by ranged reads."""
    numbers = parse_frame_list(frames)
    return _on_instance(
        service,
        study,
        series,
        instance,
        lambda record: _frames_response(service, record, numbers, None),
    )


# -- bulk data ---------------------------------------------------------------------------------
def retrieve_bulkdata(
    service: Service, study: str, series: str, instance: str, path: str
) -> Response:
    """GET .../instances/{i}/bulkdata/{tag path}: a value the metadata gave as BulkDataURI."""
    steps = parse_tag_path(path)
    record = _records(service, study, series, instance)[0]
    if steps == [PIXEL_DATA] or (len(steps) == 1 and steps[0] in (0x7FE00008, 0x7FE00009)):
        numbers = list(range(1, record.number_of_frames + 1))
        if not numbers:
            raise NotFound(f"instance {instance} has no pixel data")
        return _frames_response(service, record, numbers, None)
    vr, value = header_element(service.archive.blobs, record.blob_key, steps)
    choice = negotiate(_ranges(), [(OCTET_STREAM, EXPLICIT_VR_LE)], "optional")
    if choice is None:
        raise not_acceptable(f"bulk data {path}", [(OCTET_STREAM, EXPLICIT_VR_LE)])
    location = service.root() + instance_path(study, series, instance) + f"/bulkdata/{path}"
    if not choice.multipart:
        return Response(value, content_type=OCTET_STREAM, headers={"Content-Location": location})
    boundary = new_boundary()
    headers = {
        "Content-Type": OCTET_STREAM,
        "Content-Length": str(len(value)),
        "Content-Location": location,
    }
    return Response(
        write_parts(boundary, [(headers, [value])]),
        content_type=f'multipart/related; type="{OCTET_STREAM}"; boundary={boundary}',
    )


__all__ = ["retrieve_bulkdata", "retrieve_frames", "retrieve_instances", "retrieve_metadata"]
