"""WADO-RS frames and bulk data (PS3.18 §10.4): pixel data by ranged reads of the blob,
transcoded when the client asks for another transfer syntax."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

from flask import Response

from dicomweb.http.caching import Representation
from dicomweb.http.errors import HTTPError
from dicomweb.http.mediatypes import (
    OCTET_STREAM,
    PIXEL_MEDIA_TYPE,
    Parts,
    negotiate,
    not_acceptable,
)
from dicomweb.http.multipart import closing, part_header, write_parts
from dicomweb.http.ranges import blob_reader, ranged_response, slices
from dicomweb.http.streaming import stream
from dicomweb.service import Service
from dicomweb.transactions.wado import accepted
from storage.dicom.document import instance_path
from storage.dicom.syntaxes import ExplicitVRLittleEndian, same_pixels
from storage.dicom.values import MAX_INT64, parse_integer
from storage.errors import BlobMissing, NotFound
from storage.records import StoredRecord
from storage.retrieve.bulkdata import parse_tag_path

PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float and Double Float
# A multipart body up to this size is made before the response starts (so it has a
# Content-Length even when transcoded); the rest of a larger one streams, one frame at a time.
EAGER_BYTES = 1 << 20
FrameSource = Callable[[int], bytes]


def parse_frame_list(text: str) -> list[int]:
    """``1,2,5`` → [1, 2, 5]; 400 unless every number is a positive integer (ASCII digits)
    and none is repeated: PS3.18 §8.3.3.1, a frame list is "one or more non-duplicate frame
    numbers ... in any order"."""
    numbers = []
    for item in text.split(","):
        try:
            numbers.append(parse_integer(item.strip(), 1, MAX_INT64))
        except ValueError as exc:
            raise HTTPError(
                400,
                f"frame list {text[:80]!r} is malformed ({exc}): expected positive integers "
                "separated by ','",
            ) from exc
    if len(set(numbers)) != len(numbers):
        repeated = sorted({n for n in numbers if numbers.count(n) > 1})[:5]
        raise HTTPError(
            400,
            f"frame list repeats frame {', '.join(map(str, repeated))}: PS3.18 §8.3.3.1 asks "
            "for non-duplicate frame numbers",
        )
    return numbers


def check_frame_list(numbers: list[int], record: StoredRecord) -> None:
    """400 for a list longer than the instance has frames (§8.3.3.1, §10.4.1.1.6: the list
    names frames of the instance; a longer one cannot be non-duplicate)."""
    if len(numbers) > max(record.number_of_frames, 1):
        raise HTTPError(
            400,
            f"the frame list names {len(numbers)} frames; instance {record.instance} has "
            f"{record.number_of_frames}",
        )


def _pixel_offers(service: Service, record: StoredRecord) -> tuple[tuple[str, str], ...]:
    """The stored form first (§8.7.3: what is stored is preferred), then what the frames
    can be transcoded to."""
    return _offers_for(record.transfer_syntax, service.archive.transcode_targets(record))


@lru_cache(maxsize=1024)
def _offers_for(stored_syntax: str, targets: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    stored = (PIXEL_MEDIA_TYPE.get(stored_syntax, OCTET_STREAM), stored_syntax)
    if same_pixels(stored_syntax, ExplicitVRLittleEndian):
        stored = (OCTET_STREAM, str(ExplicitVRLittleEndian))
    offers = [stored]
    for ts in targets:
        offer = (PIXEL_MEDIA_TYPE[ts], ts)
        if offer not in offers:
            offers.append(offer)
    return tuple(offers)


def _on_instance(
    service: Service,
    study: str,
    series: str,
    instance: str,
    respond: Callable[[StoredRecord], Response],
) -> Response:
    """respond(record) with the cached record of an instance, or, if its blob has gone since
    (deleted or stored again), with the record the index has now (see Archive.instance)."""
    record = service.archive.instance(study, series, instance, who=service.who())
    try:
        return respond(record)
    except BlobMissing:
        return respond(
            service.archive.instance(study, series, instance, fresh=True, who=service.who())
        )


@dataclass(frozen=True)
class _Parts:
    """The multipart body of frames of one instance, one part per frame."""

    boundary: str
    part_type: str
    base: str  # the instance's URL

    def head(self, number: int, length: int) -> bytes:
        return part_header(
            self.boundary,
            {
                "Content-Type": self.part_type,
                "Content-Length": str(length),
                "Content-Location": f"{self.base}/frames/{number}",
            },
        )

    def chunks(self, numbers: list[int], first: bytes, read: FrameSource) -> Iterator[bytes]:
        """Every part, frame 1 made already; frames are read as they are sent."""
        yield from (self.head(numbers[0], len(first)), first, b"\r\n")
        for number in numbers[1:]:
            data = read(number)
            yield from (self.head(number, len(data)), data, b"\r\n")
        yield closing(self.boundary)

    def length(self, numbers: list[int], sizes: list[int | None]) -> int | None:
        """The body's length when every frame's is known (stored frames: the frame table)."""
        if any(size is None for size in sizes):
            return None
        known = [size or 0 for size in sizes]
        parts = zip(numbers, known, strict=True)
        return sum(len(self.head(n, size)) + size + 2 for n, size in parts) + len(
            closing(self.boundary)
        )


def _frames_response(service: Service, record: StoredRecord, numbers: list[int]) -> Response:
    check_frame_list(numbers, record)
    frames = service.archive.frames(record)
    frames.check(numbers)
    offered = _pixel_offers(service, record)
    choice = negotiate(accepted(), offered, Parts.OPTIONAL if len(numbers) == 1 else Parts.REQUIRED)
    if choice is None:
        raise not_acceptable(f"the frames of instance {record.instance}", offered)
    part_type = choice.media_type
    if choice.media_type != OCTET_STREAM or choice.transfer_syntax != ExplicitVRLittleEndian:
        part_type += f"; transfer-syntax={choice.transfer_syntax}"
    list_text = ",".join(map(str, numbers))
    representation = Representation(
        record.blob_key, record.stored_at, "frames", list_text, part_type, choice.multipart,
        max_age=service.config.cache_max_age,
    )  # fmt: skip
    if representation.unchanged():
        service.archive.blob_size(record)  # BlobMissing if the record is stale
        return representation.not_modified()
    headers = representation.headers()
    base = service.root() + instance_path(record.study, record.series, record.instance)
    service.archive.prefetch_frames(record, numbers)  # neighbouring tiles: one ranged GET
    read = service.archive.frame_source(record, choice.transfer_syntax)
    first = read(numbers[0])  # a stale record fails here, before anything is sent
    if not choice.multipart:
        headers["Content-Location"] = f"{base}/frames/{numbers[0]}"
        return Response(first, content_type=part_type, headers=headers)
    parts = _Parts(representation.boundary, part_type, base)
    content_type = f'multipart/related; type="{choice.media_type}"; boundary={parts.boundary}'
    chunks = parts.chunks(numbers, first, read)
    head, complete = _eager(chunks)
    if complete:
        headers["Content-Length"] = str(sum(map(len, head)))
        return Response(head, content_type=content_type, headers=headers)
    # The rest streams, one frame read at a time. As stored, every length is in the frame
    # table: the body's length is known, so a client can tell a body cut short.
    as_stored = same_pixels(record.transfer_syntax, choice.transfer_syntax)
    length = parts.length(numbers, [frames.length(n) for n in numbers]) if as_stored else None
    what = f"{len(numbers)} frames of instance {record.instance}"
    return stream(chain(head, chunks), what, length, content_type=content_type, headers=headers)


def _eager(chunks: Iterator[bytes]) -> tuple[list[bytes], bool]:
    """The first chunks of a body up to EAGER_BYTES (and the chunk that passes it), and
    whether that is the whole body."""
    head: list[bytes] = []
    size = 0
    for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        if size > EAGER_BYTES:
            return head, False
    return head, True


def retrieve_frames(
    service: Service, study: str, series: str, instance: str, frames: str
) -> Response:
    """GET .../instances/{i}/frames/{list}: one part per frame, by ranged reads."""
    numbers = parse_frame_list(frames)
    return _on_instance(
        service, study, series, instance, lambda record: _frames_response(service, record, numbers)
    )


def retrieve_bulkdata(
    service: Service, study: str, series: str, instance: str, path: str
) -> Response:
    """GET .../instances/{i}/bulkdata/{tag path}: a value the metadata gave as BulkDataURI.

    Single-part octet-stream responses honour Range (RFC 9110 §14): a part of an ICC profile
    or of native pixel data is one ranged read.
    """
    steps = parse_tag_path(path)
    record = service.archive.records(study, series, instance, who=service.who())[0]
    location = service.root() + instance_path(study, series, instance) + f"/bulkdata/{path}"
    octets = [(OCTET_STREAM, str(ExplicitVRLittleEndian))]
    choice = negotiate(accepted(), octets, Parts.OPTIONAL)
    if len(steps) == 1 and steps[0] in PIXEL_TAGS:
        numbers = list(range(1, record.number_of_frames + 1))
        if not numbers:
            raise NotFound(f"instance {instance} has no pixel data")
        native = same_pixels(record.transfer_syntax, ExplicitVRLittleEndian)
        if native and choice is not None and not choice.multipart:
            return _native_pixel_data(service, record, location)
        return _frames_response(service, record, numbers)
    if choice is None:
        raise not_acceptable(f"bulk data {path}", octets)
    representation = Representation(
        record.blob_key, record.stored_at, "bulkdata", path, max_age=service.config.cache_max_age
    )
    # A large value (an annotation's Point Coordinates Data) is read from the blob by
    # offset, never by loading the data set around it.
    found = service.archive.bulk_location(record, steps)
    if found is None:
        _, value = service.archive.bulk_element(record, steps)
        read, size = slices(value), len(value)
    else:
        read = blob_reader(lambda ranges: service.archive.read_ranges(record, ranges), found.offset)
        size = found.length
    if representation.unchanged():
        return representation.not_modified()
    if not choice.multipart:
        return ranged_response(
            read, size, OCTET_STREAM, representation, {"Content-Location": location}
        )
    boundary = representation.boundary
    headers = {
        "Content-Type": OCTET_STREAM,
        "Content-Length": str(size),
        "Content-Location": location,
    }
    return Response(
        write_parts(boundary, [(headers, read(0, size))]),
        content_type=f'multipart/related; type="{OCTET_STREAM}"; boundary={boundary}',
        headers=representation.headers(),
    )


def _native_pixel_data(service: Service, record: StoredRecord, location: str) -> Response:
    """The whole native Pixel Data value as one octet stream, read from the blob by offset."""
    table = service.archive.frame_table(record)
    if table is None or table.bit_packed:
        frames = service.archive.frames(record)
        data = b"".join(frames.read(n) for n in range(1, record.number_of_frames + 1))
        read, size = slices(data), len(data)
    else:
        start = table.ranges(0)[0][0]
        size = sum(table.frame_length(index) for index in range(len(table)))
        read = blob_reader(lambda ranges: service.archive.read_ranges(record, ranges), start)
    representation = Representation(
        record.blob_key, record.stored_at, "pixeldata", max_age=service.config.cache_max_age
    )
    if representation.unchanged():
        return representation.not_modified()
    return ranged_response(read, size, OCTET_STREAM, representation, {"Content-Location": location})
