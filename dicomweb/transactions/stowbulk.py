"""STOW-RS metadata plus bulk data (PS3.18 §10.5.1.2): DICOM JSON or XML parts and bulk data parts
of one request, built into Part-10 instances for the archive's one ingest."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from dicomweb.errors import CANNOT_UNDERSTAND, status_of
from dicomweb.http.dicomxml import from_xml
from dicomweb.http.errors import HTTPError
from dicomweb.http.mediatypes import (
    DEFAULT_TRANSFER_SYNTAX,
    DICOM_XML,
    PIXEL_MEDIA_TYPE,
)
from dicomweb.http.multipart import MultipartReader
from dicomweb.service import Service
from storage.blobs import StagedBlob
from storage.blobs.staged import raise_resources
from storage.dicom.assemble import BulkPart, bulk_uris, identify, write_instance
from storage.errors import ArchiveError, InvalidInstance, UnsupportedTransferSyntax

log = logging.getLogger(__name__)

# The largest metadata part read (it is parsed in memory; bulk data parts are not).
MAX_METADATA_BYTES = 64 << 20


@dataclass(frozen=True)
class Problem:
    """A failure found while receiving: its Failure Reason and the instance, when known."""

    code: int
    reason: str
    sop_class: str | None = None
    sop_instance: str | None = None


def pixel_syntax(part: BulkPart) -> str:
    """The transfer syntax of a pixel data part: its transfer-syntax parameter, else the
    default of its media type (PS3.18 Table 8.7.3-5)."""
    syntax = part.transfer_syntax or DEFAULT_TRANSFER_SYNTAX.get(part.media_type)
    if syntax is None:
        raise UnsupportedTransferSyntax(
            f"part {part.number} has the media type {part.media_type}, not one of pixel data"
        )
    if PIXEL_MEDIA_TYPE.get(syntax, "").lower() != part.media_type:
        raise UnsupportedTransferSyntax(
            f"part {part.number}: the transfer syntax {syntax} is not one of {part.media_type}"
        )
    return syntax


@dataclass
class BulkRequest:
    """The metadata and bulk data parts of one request, received before any is built."""

    workspace: Path
    # (part, position in the part, JSON object) of every instance
    instances: list[tuple[int, int, object]] = field(default_factory=list)
    parts: dict[str, list[BulkPart]] = field(default_factory=dict)  # by Content-Location
    unnamed: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def metadata(self, reader: MultipartReader, media_type: str) -> None:
        """A DICOM JSON part (Annex F): an array of instances (or one instance); or a
        NativeDicomModel XML part (PS3.19 Annex A): one instance."""
        number = reader.part_number
        data = bytearray()

        def keep(chunk: memoryview) -> None:
            if len(data) + len(chunk) > MAX_METADATA_BYTES:
                raise HTTPError(
                    413, f"part {number}: DICOM JSON longer than {MAX_METADATA_BYTES} bytes"
                )
            data.extend(chunk)

        reader.copy_body(keep)
        kind = "XML" if media_type == DICOM_XML else "JSON"
        try:
            document = from_xml(bytes(data)) if kind == "XML" else json.loads(data)
        except (ValueError, RecursionError) as exc:
            # RecursionError: nested deeper than the parser's stack (json, or the XML's
            # sequences); write_instance refuses less deep documents that it cannot build.
            why = "nested too deeply" if isinstance(exc, RecursionError) else f"invalid: {exc}"
            self.problems.append(
                Problem(CANNOT_UNDERSTAND, f"part {number}: the DICOM {kind} is {why}")
            )
            return
        objects = document if isinstance(document, list) else [document]
        for index, obj in enumerate(objects, start=1):
            self.instances.append((number, index, obj))

    def bulk(
        self,
        reader: MultipartReader,
        headers: dict[str, str],
        media_type: str,
        params: dict[str, str],
    ) -> None:
        """A bulk data part, received into a file of the workspace."""
        number = reader.part_number
        path = self.workspace / f"part{number}"
        size = 0
        try:
            with path.open("wb") as out:

                def keep(chunk: memoryview) -> None:
                    out.write(chunk)

                size = reader.copy_body(keep)
        except OSError as exc:
            raise_resources(exc)
        part = BulkPart(number, path, size, media_type, params.get("transfer-syntax"))
        names = [headers.get("content-location", "")]
        if content_id := headers.get("content-id", "").strip("<> "):
            names.append(f"cid:{content_id}")
        names = [name for name in names if name]
        if not names:
            self.unnamed.append(number)
        for name in names:
            self.parts.setdefault(name, []).append(part)

    def build(self, service: Service) -> tuple[list[tuple[str, StagedBlob]], list[Problem]]:
        """Each instance as a staged Part-10 blob; an instance that cannot be built is a
        problem of its own (PS3.18 §10.5.3), the others are stored."""
        staged: list[tuple[str, StagedBlob]] = []
        used: set[int] = set()

        def resolve(uri: str) -> list[BulkPart]:
            found = self.parts.get(uri)
            if not found:
                raise InvalidInstance(f"the BulkDataURI {uri[:200]} names no part of the request")
            used.update(part.number for part in found)
            return found

        for number, index, obj in self.instances:
            blob = service.archive.stage()
            try:
                write_instance(obj, resolve, pixel_syntax, blob.write)
                blob.finish()
            except ArchiveError as exc:
                blob.discard()
                # The parts of a refused instance are its own, not unreferenced ones.
                used.update(p.number for uri in bulk_uris(obj) for p in self.parts.get(uri, []))
                sop_class, sop_instance = identify(obj)
                self.problems.append(
                    Problem(
                        status_of(exc).failure_reason,
                        f"part {number} instance {index}: {exc.reason}",
                        exc.sop_class or sop_class,
                        exc.sop_instance or sop_instance,
                    )
                )
                continue
            except BaseException:
                for _, built in [*staged, ("", blob)]:
                    built.discard()
                raise
            staged.append((f"part {number} instance {index}", blob))
        received = {part.number for parts in self.parts.values() for part in parts}
        for part in sorted(received - used) + self.unnamed:
            self.problems.append(
                Problem(CANNOT_UNDERSTAND, f"part {part}: no BulkDataURI names this bulk data")
            )
        return staged, self.problems

    def close(self) -> None:
        shutil.rmtree(self.workspace, ignore_errors=True)
