"""STOW-RS (PS3.18 §10.5): Part-10 instances, or DICOM JSON metadata plus bulk data, in
multipart/related, streamed to the archive."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Response, request

from dicomweb import auditing
from dicomweb.errors import (
    CANNOT_UNDERSTAND,
    OUT_OF_RESOURCES,
    PROCESSING_FAILURE,
    SYNTAX_FAILURES,
    status_of,
)
from dicomweb.http.datasets import dataset_response
from dicomweb.http.errors import HTTPError
from dicomweb.http.mediatypes import DICOM, DICOM_JSON, DICOM_XML, parse_media_type
from dicomweb.http.multipart import BodyReader, MultipartReader
from dicomweb.http.warning import warning_header
from dicomweb.service import Service
from dicomweb.transactions.stowbulk import BulkRequest, Problem
from storage.access import Scope, require
from storage.blobs import StagedBlob
from storage.dicom.document import JsonObject, instance_path
from storage.dicom.part10 import Part10Writer
from storage.dicom.uids import validate_uid
from storage.errors import ArchiveError, OutOfResources

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """The Store Instances Response Module (PS3.18 Annex I) being assembled."""

    root: str
    referenced: list[JsonObject]
    failed: list[JsonObject]
    other_failures: list[JsonObject]
    reasons: list[str]

    def stored(self, sop_class: str, sop_instance: str, url: str) -> None:
        self.referenced.append(
            {
                "00081150": {"vr": "UI", "Value": [sop_class]},
                "00081155": {"vr": "UI", "Value": [sop_instance]},
                "00081190": {"vr": "UR", "Value": [url]},
            }
        )

    def failure(
        self, code: int, reason: str, sop_class: str | None, sop_instance: str | None
    ) -> None:
        item: JsonObject = {"00081197": {"vr": "US", "Value": [code]}}
        if sop_class and sop_instance:
            self.failed.append(
                {
                    "00081150": {"vr": "UI", "Value": [sop_class]},
                    "00081155": {"vr": "UI", "Value": [sop_instance]},
                    **item,
                }
            )
        else:
            self.other_failures.append(item)
        self.reasons.append(f"{code:04X} {reason}")

    @property
    def codes(self) -> list[int]:
        return [item["00081197"]["Value"][0] for item in self.failed + self.other_failures]

    def status(self) -> int:
        """Table 10.5.3-1: 200 all stored, 202 some, 400 none (bad syntax), 409 none (conflict);
        507 none because the archive is full (RFC 4918 §11.5, as when receiving fails)."""
        if self.referenced:
            return 202 if self.codes else 200
        if self.codes and all(code in SYNTAX_FAILURES for code in self.codes):
            return 400
        if self.codes and all(code == OUT_OF_RESOURCES for code in self.codes):
            return status_of(OutOfResources("")).http
        return 409

    def dataset(self, study_url: str | None) -> JsonObject:
        module: JsonObject = {
            "00081190": {"vr": "UR", "Value": [study_url]} if study_url else {"vr": "UR"}
        }
        if self.failed:
            module["00081198"] = {"vr": "SQ", "Value": self.failed}
        if self.referenced:
            module["00081199"] = {"vr": "SQ", "Value": self.referenced}
        if self.other_failures:
            module["0008119A"] = {"vr": "SQ", "Value": self.other_failures}
        return module


def _request_parts(service: Service) -> tuple[list[tuple[str, StagedBlob]], list[Problem]]:
    """Receive every part of the request into staged blobs, each with the part it came from;
    a malformed body raises HTTPError
    after discarding what was staged, so nothing of a bad request is ever stored."""
    media_type, params = parse_media_type(request.headers.get("Content-Type", ""))
    length_header = request.headers.get("Content-Length")
    content_length = int(length_header) if length_header and length_header.isdigit() else None
    limit = service.config.max_request_bytes
    if content_length is not None and content_length > limit:
        raise HTTPError(
            413,
            f"the request body of {content_length} bytes is larger than the limit of {limit} bytes",
        )
    body = BodyReader(request.environ["wsgi.input"], content_length, limit)
    staged: list[tuple[str, StagedBlob]] = []
    problems: list[Problem] = []
    bulk: BulkRequest | None = None
    try:
        if media_type == DICOM:
            # A single Part-10 body: not in Table 10.5.1-1, accepted as a convenience.
            blob = service.archive.stage()
            staged.append(("part 1", blob))
            writer = Part10Writer(blob.write)
            while data := body.read():
                writer(data)
            writer.close()
            return staged, problems
        if media_type != "multipart/related":
            raise HTTPError(
                415,
                f"Content-Type {media_type or '(none)'} is not supported; send "
                f'multipart/related; type="{DICOM}" with one Part-10 instance per part',
            )
        part_type = params.get("type", "").lower()
        if part_type not in (DICOM, DICOM_JSON, DICOM_XML):
            raise HTTPError(
                415,
                f'multipart/related; type="{part_type}" is not supported; this server stores '
                f'Part-10 instances sent as multipart/related; type="{DICOM}", and metadata '
                f'with bulk data sent as multipart/related; type="{DICOM_JSON}" or '
                f'type="{DICOM_XML}"',
            )
        if part_type in (DICOM_JSON, DICOM_XML):
            # §10.5.1.2: metadata parts, and the bulk data parts they name by Content-Location.
            bulk = BulkRequest(service.archive.workspace())
        reader = MultipartReader(body, params.get("boundary", ""))
        for headers in reader.parts():
            part_media_type, part_params = parse_media_type(headers.get("content-type", part_type))
            if bulk is not None and part_media_type in (DICOM_JSON, DICOM_XML):
                bulk.metadata(reader, part_media_type)
                continue
            if bulk is not None and part_media_type != DICOM:
                bulk.bulk(reader, headers, part_media_type, part_params)
                continue
            if part_media_type != DICOM:
                reader.copy_body(lambda _data: None)
                problems.append(
                    Problem(
                        CANNOT_UNDERSTAND,
                        f"part {reader.part_number} has Content-Type {part_media_type}, "
                        f"not {DICOM}",
                    )
                )
                continue
            blob = service.archive.stage()
            staged.append((f"part {reader.part_number}", blob))
            writer = Part10Writer(blob.write)
            reader.copy_body(writer)
            writer.close()
            blob.finish()
        if bulk is not None:
            built, bulk_problems = bulk.build(service)
            staged += built
            problems += bulk_problems
        if not staged and not problems:
            raise HTTPError(400, "the request holds no instances")
        return staged, problems
    except BaseException:
        for _, blob in staged:
            blob.discard()
        raise
    finally:
        if bulk is not None:
            bulk.close()


def store(service: Service, study: str | None = None) -> Response:
    """POST /studies[/{study}]."""
    require(service.who(), Scope.WRITE)  # before the body is read: 403 for the whole request
    if study is not None:
        validate_uid(study, "Study Instance UID")
    root = service.root()
    staged, problems = _request_parts(service)
    outcome = Outcome(root, [], [], [], [])
    for problem in problems:
        outcome.failure(problem.code, problem.reason, problem.sop_class, problem.sop_instance)
    studies: set[str] = set()
    for label, blob in staged:
        try:
            result = service.archive.ingest(blob, study, who=service.who())
        except ArchiveError as exc:
            status = status_of(exc)
            if status.retry_after and not studies:
                # A transient condition (the index unreachable) with nothing stored yet: the
                # whole request gets its status and Retry-After, to be sent again later.
                raise
            log.info("STOW %s refused: %s", label, exc.reason)
            code = status.failure_reason
            outcome.failure(code, f"{label}: {exc.reason}", exc.sop_class, exc.sop_instance)
            auditing.note(study or "", "", exc.sop_instance or "", False)
            continue
        except Exception:
            log.exception("STOW %s failed", label)
            outcome.failure(PROCESSING_FAILURE, f"{label}: internal error", None, None)
            continue
        studies.add(result.study)
        auditing.note(result.study, result.series, result.instance, True)
        outcome.stored(
            result.sop_class,
            result.instance,
            root + instance_path(result.study, result.series, result.instance),
        )
    target = study or (next(iter(studies)) if len(studies) == 1 else None)
    study_url = f"{root}/studies/{target}" if target and studies else None
    # The Warning header carries the readable reasons (§10.5.3.2 recommends a DICOM status
    # code and a description).
    headers = warning_header(outcome.reasons, root)
    return dataset_response(outcome.dataset(study_url), outcome.status(), headers)
