"""The archive: one ingest path for every front door, and the reads the front doors need."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from storage.attributes import Identity, named_uids
from storage.blobstore import BlobStore, FilesystemBlobStore, StagedBlob
from storage.database import create_index_engine, migrate
from storage.errors import ArchiveError, NotFound, StudyMismatch
from storage.frames import FrameTable
from storage.index import Entry, StoredRecord, StudyIndex
from storage.metadata import build_document, load
from storage.part10 import read_part10
from storage.uid import validate_uid

log = logging.getLogger(__name__)

REJECT = "reject"
OVERWRITE = "overwrite"


@dataclass(frozen=True)
class StoredInstance:
    """The outcome of a successful ingest."""

    study: str
    series: str
    instance: str
    sop_class: str
    transfer_syntax: str
    number_of_frames: int
    size: int
    replaced: bool


class Archive:
    """Blob store + study index behind one ingest function and typed lookups."""

    def __init__(self, index: StudyIndex, blobs: BlobStore, duplicate_policy: str = REJECT):
        if duplicate_policy not in (REJECT, OVERWRITE):
            raise ValueError(f"duplicate policy must be {REJECT!r} or {OVERWRITE!r}")
        self.index = index
        self.blobs = blobs
        self.duplicate_policy = duplicate_policy

    # -- ingest ----------------------------------------------------------------------------------
    def ingest(self, staged: StagedBlob, study: str | None = None) -> StoredInstance:
        """Store one staged Part-10 instance; the staged file is consumed either way.

        Two phases (after Microsoft's dicom-server): the index row is claimed ``pending``, the
        blob is renamed into place atomically, then metadata, frame table and ``stored`` are
        committed in one transaction. A failure at any step undoes the earlier ones, so no
        query or retrieve ever sees half an instance.
        """
        named: tuple[str | None, str | None] = (None, None)
        try:
            staged.finish()
            parsed = read_part10(staged.path)
            named = named_uids(parsed.dataset)
            identity = Identity.of(parsed.dataset)
            if study is not None and identity.study != study:
                raise StudyMismatch(
                    f"instance {identity.instance} belongs to study {identity.study}, "
                    f"not to the target study {study}"
                )
            pixel = parsed.pixel
            document = build_document(
                parsed.dataset,
                identity.study,
                identity.series,
                identity.instance,
                pixel.vr if pixel else None,
                pixel.tag if pixel else 0x7FE00010,
            )
            frames = parsed.frames.to_bytes() if parsed.frames is not None else None
            key = (
                f"{identity.study}/{identity.series}/{identity.instance}.{secrets.token_hex(6)}.dcm"
            )
            claim = self.index.claim(identity.instance, key, self.duplicate_policy == OVERWRITE)
            if claim.abandoned_key:
                self.blobs.delete(claim.abandoned_key)
            try:
                self.blobs.place(staged, key)
                self.index.commit(
                    claim,
                    Entry(
                        identity,
                        parsed.dataset,
                        parsed.transfer_syntax,
                        parsed.number_of_frames,
                        parsed.size,
                        document,
                        frames,
                        key,
                    ),
                )
            except BaseException:
                self.index.release(claim)
                self.blobs.delete(key)
                raise
        except ArchiveError as exc:
            if exc.sop_instance is None:
                exc.sop_class, exc.sop_instance = named
            raise
        finally:
            staged.discard()
        if claim.previous_key and claim.previous_key != key:
            self.blobs.delete(claim.previous_key)
        return StoredInstance(
            identity.study,
            identity.series,
            identity.instance,
            identity.sop_class,
            parsed.transfer_syntax,
            parsed.number_of_frames,
            parsed.size,
            claim.previous_key is not None,
        )

    def ingest_file(self, path: Path, study: str | None = None) -> StoredInstance:
        """Store a Part-10 file from the local filesystem (copied; the source is left alone)."""
        return self.ingest(self.blobs.stage_copy(path), study)

    def ingest_staged_file(self, path: Path, study: str | None = None) -> StoredInstance:
        """Store a complete Part-10 file made inside the staging area (e.g. by the converter):
        it is renamed into place, never copied."""
        return self.ingest(self.blobs.adopt(path), study)

    def delete(self, sop_instance_uid: str) -> None:
        """Remove a stored instance (index rows, then its blob)."""
        key = self.index.delete(validate_uid(sop_instance_uid, "SOP Instance UID"))
        if key:
            self.blobs.delete(key)

    def recover(self) -> int:
        """Undo writes interrupted by a crash; call before any writer starts. Returns a count."""
        claims = self.index.abandoned_claims()
        for claim in claims:
            self.index.release(claim)
            self.blobs.delete(claim.key)
        purged = self.blobs.purge_staging()
        if claims or purged:
            log.warning("recovered %d interrupted writes, %d staged uploads", len(claims), purged)
        return len(claims) + purged

    # -- reads -----------------------------------------------------------------------------------
    def records(
        self, study: str, series: str | None = None, instance: str | None = None
    ) -> list[StoredRecord]:
        """Stored instances of a study / series / instance (UIDs validated first)."""
        validate_uid(study, "Study Instance UID")
        if series is not None:
            validate_uid(series, "Series Instance UID")
        if instance is not None:
            validate_uid(instance, "SOP Instance UID")
        return self.index.records(study, series, instance)

    def documents(self, records: list[StoredRecord]) -> Iterator[bytes]:
        """Stored (compressed) DICOM JSON documents of *records*."""
        return self.index.documents(records)

    def document(self, record: StoredRecord) -> dict:
        """The metadata document of one instance as a DICOM JSON object ({} if it has none)."""
        found = next(iter(self.index.documents([record])), None)
        return load(found) if found is not None else {}

    def frame_table(self, record: StoredRecord) -> FrameTable:
        data = self.index.frame_ranges(record.pk)
        if data is None:
            raise NotFound(f"instance {record.instance} has no pixel data frames")
        return FrameTable.from_bytes(data)


def open_archive(
    database_url: str,
    blob_dir: Path,
    duplicate_policy: str = REJECT,
    fsync: bool = True,
    engine: Engine | None = None,
) -> Archive:
    """Open (and migrate) the index at *database_url* with a filesystem blob store."""
    engine = engine or create_index_engine(database_url)
    migrate(engine)
    return Archive(StudyIndex(engine), FilesystemBlobStore(blob_dir, fsync), duplicate_policy)
