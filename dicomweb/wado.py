"""WADO-RS (PS3.18 §10.4): instances, metadata, frames and bulk data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

from flask import Response, request

from dicomweb.caching import Representation
from dicomweb.errors import HTTPError
from dicomweb.mediatypes import (
    DICOM,
    DICOM_JSON,
    EXPLICIT_VR_LE,
    OCTET_STREAM,
    PIXEL_MEDIA_TYPE,
    Choice,
    negotiate,
    not_acceptable,
    requested_ranges,
)
from dicomweb.multipart import closing, new_boundary, part_header, write_parts
from dicomweb.ranges import blob_reader, ranged_response, slices
from dicomweb.responses import wants_xml, xml_parts_response
from dicomweb.service import Service
from storage.errors import BlobMissing, NotFound
from storage.index import StoredRecord
from storage.metadata import absolutize, instance_path, load, render
from storage.pixels import ImageInfo, targets
from storage.retrieve import FrameReader, blob_chunks, header_element, parse_tag_path
from storage.transcoding import same_pixels

PIXEL_DATA = 0x7FE00010


def _ranges():  # type: ignore[no-untyped-def]
    return requested_ranges(request.headers.get("Accept"), request.args.getlist("accept"))


def _records(service: Service, study: str, series: str | None, instance: str | None):  # type: ignore[no-untyped-def]
    return service.archive.records(study, series, instance)


# -- instances ---------------------------------------------------------------------------------
def _instance_offers(service: Service, record: StoredRecord) -> list[tuple[str, str]]:
    """The stored form first, then every transfer syntax the instance can be transcoded to."""
    offers = [(DICOM, record.transfer_syntax)]
    if record.number_of_frames:
        info = service.image_info(record)
        offers += [(DICOM, ts) for ts in targets(record.transfer_syntax, info)]
    return offers


def _instance_body(service: Service, record: StoredRecord, target: str) -> Iterable[bytes]:
    if target == record.transfer_syntax:
        return blob_chunks(service.archive.blobs, record.blob_key)
    info = service.image_info(record)
    assert info is not None  # only offered when the pixels can be decoded
    reader = service.frame_reader(record)
    return service.transcoder.instance(service.archive.blobs, reader, info, target)


def retrieve_instances(
    service: Service, study: str, series: str | None = None, instance: str | None = None
) -> Response:
    """GET /studies/{s}[/series/{se}[/instances/{i}]]: Part-10 instances, as stored or
    transcoded to the transfer syntax the client accepts (§8.7.3.5.2)."""
    records = _records(service, study, series, instance)
    ranges = _ranges()
    single = instance is not None
    choices: list[Choice] = []
    for record in records:
        offered = _instance_offers(service, record)
        choice = negotiate(ranges, offered, "optional" if single else "required")
        if choice is None:
            raise not_acceptable(f"instance {record.instance}", offered)
        choices.append(choice)
    root = service.root()
    if single and not choices[0].multipart:
        record, target = records[0], choices[0].transfer_syntax
        content_type = f"{DICOM}; transfer-syntax={target}"
        representation = Representation(record, "instance", target, max_age=service.cache_max_age)
        if representation.unchanged():
            return representation.not_modified()
        if target == record.transfer_syntax:
            # The stored file: Range requests let a client resume a large download.
            reader = blob_reader(service.archive.blobs.read_ranges, record.blob_key)
            return ranged_response(reader, record.size, content_type, representation)
        return Response(
            _instance_body(service, record, target),
            content_type=content_type,
            headers=representation.headers(),
        )

    def parts() -> Iterator[tuple[dict[str, str], Iterable[bytes]]]:
        for record, choice in zip(records, choices, strict=True):
            target = choice.transfer_syntax
            headers = {
                "Content-Type": f"{DICOM}; transfer-syntax={target}",
                "Content-Location": root
                + instance_path(record.study, record.series, record.instance),
            }
            if target == record.transfer_syntax:
                headers["Content-Length"] = str(record.size)
            yield headers, _instance_body(service, record, target)

    boundary = new_boundary()
    syntaxes = {choice.transfer_syntax for choice in choices}
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


def _pixel_offers(service: Service, record: StoredRecord) -> tuple[tuple[str, str], ...]:
    """The stored form first (§8.7.3: what is stored is preferred), then what the frames
    can be transcoded to."""
    return _offers_for(record.transfer_syntax, service.image_info(record))


@lru_cache(maxsize=1024)
def _offers_for(stored_syntax: str, info: ImageInfo | None) -> tuple[tuple[str, str], ...]:
    stored = (PIXEL_MEDIA_TYPE.get(stored_syntax, OCTET_STREAM), stored_syntax)
    if same_pixels(stored_syntax, EXPLICIT_VR_LE):
        stored = (OCTET_STREAM, EXPLICIT_VR_LE)
    offers = [stored]
    for ts in targets(stored_syntax, info):
        offer = (PIXEL_MEDIA_TYPE[ts], ts)
        if offer not in offers:
            offers.append(offer)
    return tuple(offers)


def _on_instance(service: Service, study: str, series: str, instance: str, respond) -> Response:  # type: ignore[no-untyped-def]
    """respond(record) with the cached record of an instance, or, if its blob has gone since
    (deleted or stored again), with the record the index has now (see InstanceCache)."""
    record = service.instance(study, series, instance)
    try:
        return respond(record)
    except BlobMissing:
        return respond(service.instance(study, series, instance, fresh=True))


def _frame_source(service: Service, reader: FrameReader, target: str) -> Callable[[int], bytes]:
    """How to get frame N in *target*: a ranged read, or a (cached) transcoding of one."""
    if same_pixels(reader.record.transfer_syntax, target):
        return reader.read
    info = service.image_info(reader.record)
    assert info is not None  # only offered when the pixels can be decoded
    return lambda number: service.transcoder.frame(reader, info, number, target).data


EAGER_FRAMES = 64  # up to this many frames are read before the response starts


def _frames_response(
    service: Service, record: StoredRecord, numbers: list[int], location: str | None
) -> Response:
    reader = service.frame_reader(record)
    reader.check(numbers)
    offered = _pixel_offers(service, record)
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
    read = _frame_source(service, reader, choice.transfer_syntax)
    first = read(numbers[0])  # a stale record fails here, before anything is sent
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
            body += part(number, read(number))
        body.append(closing(boundary))
        headers["Content-Length"] = str(sum(map(len, body)))
        return Response(body, content_type=content_type, headers=headers)

    def stream() -> Iterator[bytes]:
        yield from part(numbers[0], first)
        for number in numbers[1:]:
            yield from part(number, read(number))
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
    """GET .../instances/{i}/bulkdata/{tag path}: a value the metadata gave as BulkDataURI.

    Single-part octet-stream responses honour Range (RFC 9110 §14): a part of an ICC profile
    or of native pixel data is one ranged read.
    """
    steps = parse_tag_path(path)
    record = _records(service, study, series, instance)[0]
    location = service.root() + instance_path(study, series, instance) + f"/bulkdata/{path}"
    octets = [(OCTET_STREAM, EXPLICIT_VR_LE)]
    choice = negotiate(_ranges(), octets, "optional")
    if steps == [PIXEL_DATA] or (len(steps) == 1 and steps[0] in (0x7FE00008, 0x7FE00009)):
        numbers = list(range(1, record.number_of_frames + 1))
        if not numbers:
            raise NotFound(f"instance {instance} has no pixel data")
        native = same_pixels(record.transfer_syntax, EXPLICIT_VR_LE)
        if native and choice is not None and not choice.multipart:
            return _native_pixel_data(service, record, location)
        return _frames_response(service, record, numbers, None)
    if choice is None:
        raise not_acceptable(f"bulk data {path}", octets)
    vr, value = header_element(service.archive.blobs, record.blob_key, steps)
    representation = Representation(record, "bulkdata", path, max_age=service.cache_max_age)
    if representation.unchanged():
        return representation.not_modified()
    if not choice.multipart:
        return ranged_response(
            slices(value), len(value), OCTET_STREAM, representation, {"Content-Location": location}
        )
    boundary = representation.boundary
    headers = {
        "Content-Type": OCTET_STREAM,
        "Content-Length": str(len(value)),
        "Content-Location": location,
    }
    return Response(
        write_parts(boundary, [(headers, [value])]),
        content_type=f'multipart/related; type="{OCTET_STREAM}"; boundary={boundary}',
        headers=representation.headers(),
    )


def _native_pixel_data(service: Service, record: StoredRecord, location: str) -> Response:
    """The whole native Pixel Data value as one octet stream, read from the blob by offset."""
    table = service.frame_tables.get(record)
    if table is None or table.bit_packed:
        reader = service.frame_reader(record)
        data = b"".join(reader.read(n) for n in range(1, record.number_of_frames + 1))
        read, size = slices(data), len(data)
    else:
        start = table.ranges(0)[0][0]
        size = sum(table.frame_length(index) for index in range(len(table)))
        read = blob_reader(service.archive.blobs.read_ranges, record.blob_key, start)
    representation = Representation(record, "pixeldata", max_age=service.cache_max_age)
    if representation.unchanged():
        return representation.not_modified()
    return ranged_response(read, size, OCTET_STREAM, representation, {"Content-Location": location})


__all__ = ["retrieve_bulkdata", "retrieve_frames", "retrieve_instances", "retrieve_metadata"]
