"""The archive: the one door into the core. Front doors store, search and read through it
alone; its collaborators (index, blobs, caches, transcoder, renderer) are private."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydicom.uid import DeflatedExplicitVRLittleEndian

from storage import health
from storage import ingest as ingesting
from storage import update as updating
from storage import verify as verifying
from storage.access import Principal, Scope, TokenInfo, require
from storage.audit import AuditQuery, AuditRecord, Operation
from storage.blobs import BlobStore, StagedBlob, open_blob_store
from storage.cache import Lru
from storage.config import ArchiveConfig, DuplicatePolicy
from storage.dicom.corrections import MERGED, Correction, needs_unicode
from storage.dicom.corrections import Scope as Attributes
from storage.dicom.document import JsonDataset, JsonObject, load
from storage.dicom.frames import FrameTable
from storage.dicom.syntaxes import same_pixels
from storage.dicom.uids import validate_uid
from storage.errors import ArchiveError, BlobMissing, CodecError, Forbidden, InvalidRequest
from storage.imaging.codecs import ImageInfo
from storage.imaging.display import Rendered, RenderRequest
from storage.index import changes, outbox
from storage.index.audit import DETAIL_LENGTH, AuditStore, patients
from storage.index.engine import Database, Revisions, create_index_engine, migrate, revisions
from storage.index.jobs import JobStore
from storage.index.pseudonyms import PseudonymStore
from storage.index.reads import IndexReader
from storage.index.tiers import TierIndex
from storage.index.tokens import TokenStore
from storage.index.writes import IndexWriter
from storage.jobs import JobRecords
from storage.query import results
from storage.query.results import Page
from storage.query.search import Search
from storage.records import (
    ByteStream,
    Change,
    Check,
    FeedWindow,
    ForwardCount,
    ForwardItem,
    ForwardState,
    InstanceFile,
    Pseudonym,
    State,
    StoredInstance,
    StoredRecord,
)
from storage.retrieve.bulkdata import blob_chunks, header_element
from storage.retrieve.described import Descriptions, Image
from storage.retrieve.frames import FrameReader
from storage.retrieve.locate import BulkLocation, locate
from storage.retrieve.renderer import Renderer
from storage.retrieve.transcoder import Transcoder
from storage.tiers.config import parse_rules, parse_tiers
from storage.tiers.manager import Move, TierReport, Tiers
from storage.tiers.store import tiered
from storage.verify import Bounds, Report

# Read-path cache sizes: entries, not bytes (the transcoded frames are bounded in bytes).
RECORDS, RECORD_TTL = 4096, 30.0  # instance records by UIDs; seconds a record may be reused
FRAME_TABLES = 256  # decoded frame tables
DESCRIPTIONS = 4096  # per-blob facts: pixel description, tiles, presentation, ICC profile
TOKENS = 1024  # verified tokens kept, each for token_recheck_seconds
AUDITED = 65536  # recent audit events, so that repeats within audit_repeat_seconds count once
TOUCHED, TOUCH_SECONDS = 65536, 3600.0  # studies whose last read was recorded, and how often
PROJECT_NAME = 64  # characters of an export project's name (deid_project.name)
FrameKey = tuple[int, str]
log = logging.getLogger(__name__)
AuditKey = tuple[str, str, str, str, str, str, int]


class Archive:
    """Blob store + study index behind one ingest and the reads the front doors need."""

    def __init__(self, database: Database, blobs: BlobStore, config: ArchiveConfig) -> None:
        self._database = database
        self._writer = IndexWriter(database.engine)
        self._reader = IndexReader(database.engine)
        # Storage tiers: with one tier (none configured) the blob store itself is read.
        tiers = parse_tiers(config.storage_tiers)
        self._tier_index = TierIndex(database.engine)
        store = tiered(blobs, tiers, config.fsync, lambda key, tier: self._tiers.asked(key, tier))
        self._tiers = Tiers(
            store, self._tier_index, parse_rules(config.tier_rules, tiers), self.audit
        )
        self._blobs: BlobStore = store if len(tiers) > 1 else blobs
        self._touched: Lru[str, bool] = Lru(TOUCHED, ttl=TOUCH_SECONDS)
        self._tokens = TokenStore(database.engine)
        self._audit = AuditStore(database.engine)
        self._jobs = JobStore(database.engine)
        self._pseudonyms = PseudonymStore(database.engine)
        self._policy = DuplicatePolicy(config.duplicate_policy)
        self._group_attribute = config.access_group_attribute
        self._verified: Lru[str, TokenInfo | None] = Lru(
            TOKENS, ttl=config.token_recheck_seconds, name="tokens"
        )
        self._audited: Lru[AuditKey, bool] = Lru(
            AUDITED, ttl=config.audit_repeat_seconds, name="audited"
        )
        # The read path, shared by every front door of this process.
        self._records: Lru[tuple[str, str, str], StoredRecord] = Lru(
            RECORDS, ttl=RECORD_TTL, name="records"
        )
        self._frame_tables: Lru[FrameKey, FrameTable | None] = Lru(
            FRAME_TABLES, name="frame_tables"
        )
        self._described = Descriptions(self.document, self._blobs, DESCRIPTIONS)
        self._transcoder = Transcoder(config.transcode_cache_mb << 20)
        self._renderer = Renderer(
            self._described,
            self.frames,
            # The levels of a series the caller could already see (access is per study).
            lambda study, series: self._reader.records(study, series),
            config.max_rendered_pixels,
            config.thumbnail_size,
        )

    @property
    def duplicate_policy(self) -> DuplicatePolicy:
        return self._policy

    def readiness(self) -> list[Check]:
        """Whether this process can serve: the index reachable and at this build's schema
        revision, the blob store reachable (cheap: load balancers ask every few seconds)."""
        return health.checks(self._database, self._blobs)

    def close(self) -> None:
        """Release the index's connections (a process about to fork or exit)."""
        self._database.dispose()

    # -- storing ---------------------------------------------------------------------------------
    def stage(self) -> StagedBlob:
        """A new staged blob to receive an instance into (OutOfResources when full)."""
        return self._blobs.stage()

    def staging_area(self) -> Path:
        """The local directory staged files live in (a receiver may write files there and
        hand them to ``ingest_staged_file``)."""
        return self._blobs.staging_area()

    def workspace(self) -> Path:
        """A new empty directory in the staging area for files made to be stored."""
        return self._blobs.workspace()

    def ingest(
        self, staged: StagedBlob, study: str | None = None, *, who: Principal
    ) -> StoredInstance:
        """Store one staged Part-10 instance as *who*, two-phase (see storage.ingest)."""
        try:
            require(who, Scope.WRITE)
        except BaseException:
            staged.discard()
            raise
        how = ingesting.Storing(self._policy, self._group_attribute, who)
        return ingesting.ingest(self._writer, self._blobs, how, staged, study)

    def ingest_file(
        self, path: Path, study: str | None = None, *, who: Principal
    ) -> StoredInstance:
        """Store a Part-10 file from the local filesystem (copied; the source is left alone)."""
        require(who, Scope.WRITE)
        return self.ingest(self._blobs.stage_copy(path), study, who=who)

    def ingest_staged_file(
        self, path: Path, study: str | None = None, *, who: Principal
    ) -> StoredInstance:
        """Store a complete Part-10 file made inside the staging area (e.g. by the converter):
        it is renamed into place, never copied."""
        return self.ingest(self._blobs.adopt(path), study, who=who)

    def ingest_staged_files(
        self, paths: Sequence[Path], study: str | None = None, *, who: Principal
    ) -> list[StoredInstance]:
        """Store complete Part-10 files made inside the staging area as one: all of them are
        stored, or (after a failure, or a crash and the next ``recover``) none is. The files
        are consumed either way."""
        staged: list[StagedBlob] = []
        try:
            require(who, Scope.WRITE)
            for path in paths:
                staged.append(self._blobs.adopt(path))
        except BaseException:
            for item in staged:
                item.discard()
            raise
        how = ingesting.Storing(self._policy, self._group_attribute, who)
        return ingesting.ingest_all(self._writer, self._blobs, how, staged, study)

    def delete(
        self,
        study: str,
        series: str | None = None,
        instance: str | None = None,
        *,
        who: Principal,
    ) -> int:
        """Delete the stored instances of a study / series / instance (UIDs validated first)
        that *who* may see, and return how many. NotFound when there is none: a study *who*
        may not see, or one deleted already, is not found.

        The index rows go first, in one transaction (with their change feed events), then
        the blobs. A reader holding a record of an instance finds its blob gone (BlobMissing)
        or, on the filesystem, finishes reading the file it has open. A crash between the two
        steps leaves only orphan blobs, which `verify` lists and `verify --repair` removes.
        """
        require(who, Scope.DELETE)
        validate_uid(study, "Study Instance UID")
        if series is not None:
            validate_uid(series, "Series Instance UID")
        if instance is not None:
            validate_uid(instance, "SOP Instance UID")
        keys = self._writer.delete_matching(study, series, instance, who)
        for key in keys:
            try:
                self._blobs.delete(key)
            except (OSError, ValueError) as exc:  # an orphan for verify, not a failed delete
                log.warning("deleted instance's blob %s could not be removed: %s", key, exc)
        return len(keys)

    def update(
        self,
        study: str,
        series: tuple[str, ...] | None,
        correction: Correction,
        *,
        who: Principal,
    ) -> int:
        """Correct attributes of the stored instances of a study (or, for specimen
        attributes, of some of its *series*) as *who*; returns how many were rewritten.
        Everything is checked before any object is touched (correctable); the SOP Instance
        UIDs stay.

        Each object is rewritten into a new blob and all (of every series named) are
        committed in one transaction with an ``update`` change feed event each
        (storage.update); an audit record names the attributes (not their values).
        """
        found = self.correctable(study, series, correction, who=who)
        how = ingesting.Storing(DuplicatePolicy.OVERWRITE, self._group_attribute, who)
        names = ", ".join(correction.keywords)
        try:
            count = updating.correct(
                self._writer, self._blobs, how, found, correction, series is None
            )
        except Exception as exc:
            reason = exc.reason if isinstance(exc, ArchiveError) else type(exc).__name__
            self._updated(who, study, series, f"{names} not corrected: {reason}", False)
            raise
        self._records.clear()
        self._updated(who, study, series, f"corrected {names} of {count} instances", True)
        return count

    def correctable(
        self,
        study: str,
        series: tuple[str, ...] | None,
        correction: Correction,
        *,
        who: Principal,
    ) -> list[StoredRecord]:
        """The stored instances ``update`` would rewrite, every check done (the identity,
        the UIDs, the study and series stored and visible, each object able to take the
        correction): NotFound or InvalidRequest here, so that a request of several studies
        can be checked whole before any is corrected. Patient and study attributes belong
        to the whole study, so they cannot be corrected for some series."""
        require(who, Scope.WRITE)
        validate_uid(study, "Study Instance UID")
        if series is not None:
            if not series:
                raise InvalidRequest("no series named to correct")
            for uid in series:
                validate_uid(uid, "Series Instance UID")
            if correction.scopes - {Attributes.SPECIMEN}:
                raise InvalidRequest(
                    "patient and study attributes are corrected for the whole study, "
                    "not for one series"
                )
        named: tuple[str | None, ...] = (None,) if series is None else tuple(dict.fromkeys(series))
        found: list[StoredRecord] = []
        for one in named:
            found += self._reader.records(study, one, None, who)  # NotFound
        for record in found:
            self._correctable(record, correction)
        return found

    def _correctable(self, record: StoredRecord, correction: Correction) -> None:
        """Refuse, before anything changes, a correction one stored object cannot take."""
        if record.transfer_syntax == DeflatedExplicitVRLittleEndian:
            raise InvalidRequest(
                f"instance {record.instance} is deflated: its header cannot be rewritten apart "
                "from its pixel data"
            )
        document = self.document(record)
        if needs_unicode(correction) and "ISO_IR 192" not in document.values(0x00080005):
            raise InvalidRequest(
                f"instance {record.instance} is not in UTF-8 (ISO_IR 192): only ASCII values "
                "can be set in it"
            )
        if len(document.items(MERGED)) < correction.items_needed():
            raise InvalidRequest(
                f"instance {record.instance} has fewer Specimen Description items than the "
                "correction names"
            )

    def _updated(
        self,
        who: Principal,
        study: str,
        series: tuple[str, ...] | None,
        detail: str,
        success: bool,
    ) -> None:
        """One audit record for the study, or one per series corrected."""
        for uid in series or ("",):
            self.audit(
                _by(
                    who,
                    Operation.UPDATE,
                    study=study,
                    series=uid,
                    success=success,
                    detail=detail[:DETAIL_LENGTH],
                )
            )

    def verify(self, bounds: Bounds, repair: bool = False, *, who: Principal) -> Report:
        """Compare the index with the blob store; repair what is safe (storage.verify)."""
        require(who, Scope.ADMIN)
        return verifying.verify(self._database.engine, self._writer, self._blobs, bounds, repair)

    def recover(self) -> int:
        """Undo writes interrupted by a crash; call before any writer starts."""
        return ingesting.recover(self._writer, self._blobs)

    @property
    def job_records(self) -> JobRecords:
        """The conversion jobs' records (storage.jobs); the job queues check who may use them."""
        return self._jobs

    # -- storage tiers (storage.tiers) ----------------------------------------------------------
    def tier_report(self, *, who: Principal) -> list[TierReport]:
        """Instances, bytes and monthly cost of every storage tier."""
        require(who, Scope.ADMIN)
        return self._tiers.report()

    def tier_bytes(self, *, who: Principal) -> dict[str, int]:
        """Bytes stored per tier by name (e.g. for a gauge)."""
        return {report.name: report.bytes for report in self.tier_report(who=who)}

    def apply_tiers(self, dry_run: bool = False, *, who: Principal) -> list[Move]:
        """Move blobs between tiers as the rules say (only list the moves with *dry_run*)."""
        require(who, Scope.ADMIN)
        return self._tiers.apply(who, dry_run)

    def recall(self, study: str, *, who: Principal) -> int:
        """Ask for the blobs of *study* in tiers that need a recall; returns how many."""
        require(who, Scope.ADMIN)
        self.records(validate_uid(study, "Study Instance UID"), who=who)  # NotFound
        return self._tiers.recall(study, who)

    def complete_recalls(self, *, who: Principal) -> list[Move]:
        """Bring back to the first tier the blobs whose recall is done."""
        require(who, Scope.ADMIN)
        return self._tiers.complete(who)

    # -- finding ---------------------------------------------------------------------------------
    def search(self, search: Search, *, who: Principal) -> Page:
        """QIDO-RS / C-FIND: a page of the matches *who* may see and how many more there are."""
        require(who, Scope.READ)
        return results.run(self._database.engine, search, who)

    def matching_files(self, search: Search, *, who: Principal) -> list[InstanceFile]:
        """C-MOVE / C-GET: every stored instance a search at any level matches."""
        require(who, Scope.READ)
        found = results.instance_files(self._database.engine, search, who)
        for study in {item.study for item in found}:
            self._touch(study)
        return found

    def stored_classes(self, sop_instance_uids: Iterable[str], *, who: Principal) -> dict[str, str]:
        """Storage commitment: SOP Class UID by SOP Instance UID of those that are stored."""
        require(who, Scope.WRITE)
        return self._reader.stored_classes(sop_instance_uids, who)

    def study_for_accession(
        self, accession_number: str, patient_id: str | None, *, who: Principal
    ) -> str | None:
        """The study the archive holds for an accession number (and patient), if any."""
        return self._reader.study_for_accession(accession_number, patient_id, who)

    def records(
        self,
        study: str,
        series: str | None = None,
        instance: str | None = None,
        *,
        who: Principal,
    ) -> list[StoredRecord]:
        """Stored instances of a study / series / instance (UIDs validated first) that *who*
        may see: a study it may not see is NotFound, exactly as one that is not stored."""
        require(who, Scope.READ)
        validate_uid(study, "Study Instance UID")
        if series is not None:
            validate_uid(series, "Series Instance UID")
        if instance is not None:
            validate_uid(instance, "SOP Instance UID")
        found = self._reader.records(study, series, instance, who)
        self._touch(study)
        return found

    def _touch(self, study: str) -> None:
        """Record that *study* was read, at most once per TOUCH_SECONDS in this process (the
        idle rules of storage tiers); a read never fails for want of recording it."""
        if self._touched.get(study):
            return
        self._touched.put(study, True)
        try:
            self._tier_index.touch(study, _utcnow())
        except Exception as exc:  # noqa: BLE001 (a full or read-only index still serves reads)
            log.debug("could not record the read of study %s: %s", study, exc)

    def instance(
        self, study: str, series: str, instance: str, fresh: bool = False, *, who: Principal
    ) -> StoredRecord:
        """One stored instance, from a cache of recently read records unless *fresh*.

        A blob is never rewritten, so a stale record shows itself by its blob being gone
        (BlobMissing): the caller asks again with *fresh*. Records are also reused for at most
        RECORD_TTL seconds, which bounds how long one can outlive a change of attributes.
        """
        key = (study, series, instance)
        found = None if fresh else self._records.get(key)
        if found is None:
            found = self.records(study, series, instance, who=who)[0]
            self._records.put(key, found)
        else:
            require(who, Scope.READ)
            if not who.sees(found.study, found.access_group):
                found = self.records(study, series, instance, who=who)[0]  # NotFound
            self._touch(study)
        return found

    # -- the change feed --------------------------------------------------------------------------
    def change_feed(self, feed: FeedWindow, *, who: Principal) -> list[Change]:
        """The change feed's events in *feed*, in commit order (storage.index.changes)."""
        _require_feed(who)
        return changes.window(self._database.engine, feed)

    def latest_change(self, *, who: Principal) -> Change | None:
        """The last event of the change feed, if any."""
        _require_feed(who)
        return changes.latest(self._database.engine)

    def change_documents(self, feed: Sequence[Change]) -> dict[str, JsonObject]:
        """The metadata stored now of the instances of *feed* that are still stored, by SOP
        Instance UID (BulkDataURIs relative to the service root)."""
        wanted = (change.instance for change in feed if change.state != State.DELETED)
        found = changes.current_documents(self._database.engine, wanted)
        return {uid: load(document) for uid, document in found.items()}

    def lease_cursor(self, name: str, holder: str, seconds: float) -> int | None:
        """Take or renew the delivery lease of change feed consumer *name*: the sequence it
        has been given so far, or None while another process holds the lease."""
        return changes.lease(self._database.engine, name, holder, seconds)

    def advance_cursor(self, name: str, holder: str, sequence: int) -> bool:
        """Record that consumer *name* has been given every event up to *sequence*."""
        return changes.advance(self._database.engine, name, holder, sequence)

    # -- forwarding (wsiarchive's forwarder; storage.index.outbox) ------------------------------
    def enqueue_forward(
        self, destination: str, items: Sequence[tuple[str, str, str]], again: bool = False
    ) -> int:
        """Queue (study, series, instance) *items* for *destination*; how many were queued.
        Already queued ones stay as they are unless *again* (a send that was asked for)."""
        return outbox.enqueue(self._database.engine, destination, items, again)

    def forward_due(self, destination: str, limit: int) -> list[ForwardItem]:
        """The next instances to send to *destination*, in queue order."""
        return outbox.due(self._database.engine, destination, limit)

    def forward_sent(self, pk: int) -> bool:
        """Record that outbox row *pk* was accepted by its destination."""
        return outbox.sent(self._database.engine, pk)

    def forward_failed(self, pk: int, reason: str, retry_at: datetime | None) -> None:
        """Record a failed send of outbox row *pk*: retried at *retry_at*, or failed if None."""
        outbox.failed(self._database.engine, pk, reason, retry_at)

    def stored_by(self, sop_instance_uids: Sequence[str]) -> dict[str, str]:
        """The calling AE title of the C-STORE that stored each instance ("" for the others)."""
        return outbox.stored_by(self._database.engine, sop_instance_uids)

    def forward_counts(self) -> list[ForwardCount]:
        """Per destination, how many instances are pending, sent and failed."""
        return outbox.counts(self._database.engine)

    def forward_items(self, destination: str, state: ForwardState, limit: int) -> list[ForwardItem]:
        """The outbox rows of *destination* in *state*, oldest first."""
        return outbox.items(self._database.engine, destination, state, limit)

    # -- metadata --------------------------------------------------------------------------------
    def documents(self, records: list[StoredRecord]) -> Iterator[bytes]:
        """The stored (compressed) DICOM JSON documents of *records*, in order."""
        return self._reader.documents(records)

    def document(self, record: StoredRecord) -> JsonDataset:
        """The metadata document of one instance (empty if it has none)."""
        found = next(iter(self._reader.documents([record])), None)
        return JsonDataset(load(found) if found is not None else {})

    def image_info(self, record: StoredRecord) -> ImageInfo | None:
        """The pixel description of an instance (None without pixel data)."""
        return self._described.info(record)

    def bulk_element(self, record: StoredRecord, steps: list[int | str]) -> tuple[str, bytes]:
        """The VR and value of a non-pixel bulk data element by tag path."""
        return header_element(self._blobs, record.blob_key, steps)

    def bulk_location(self, record: StoredRecord, steps: list[int | str]) -> BulkLocation | None:
        """Where a non-pixel bulk data value lies in the blob (NotFound when it is not
        there), read by walking element headers; None when its stored bytes are not the
        value as sent (big endian, deflated) and ``bulk_element`` must decode it."""
        with self._blobs.open(record.blob_key) as fp:
            return locate(fp, steps, record.transfer_syntax)

    # -- pixels ----------------------------------------------------------------------------------
    def frame_table(self, record: StoredRecord) -> FrameTable | None:
        """Where the instance's frames lie in its blob (None without one)."""

        def make() -> FrameTable | None:
            data = self._reader.frame_ranges(record.pk)
            return FrameTable.from_bytes(data) if data is not None else None

        return self._frame_tables.get_or_make((record.pk, record.blob_key), make)

    def frames(self, record: StoredRecord) -> FrameReader:
        """The frames of an instance, read by offset."""
        return FrameReader(self._blobs, record, self.frame_table(record))

    def prefetch_frames(self, record: StoredRecord, numbers: Sequence[int]) -> None:
        """Frames one request is about to read: a remote blob store fetches them together."""
        self.frames(record).prefetch(numbers)

    def transcode_targets(self, record: StoredRecord) -> tuple[str, ...]:
        """The transfer syntaxes the instance's frames can be transcoded to, in offer order."""
        return self._described.targets(record)

    def frame_source(self, record: StoredRecord, target: str) -> Callable[[int], bytes]:
        """How to get frame N in *target*: a ranged read, or a (cached) transcoding."""
        reader = self.frames(record)
        if same_pixels(record.transfer_syntax, target):
            return self._following(reader)
        info = self._decodable(record, target)
        return lambda number: self._transcoder.frame(reader, info, number, target).data

    def _following(self, reader: FrameReader) -> Callable[[int], bytes]:
        """Frame N as *reader* reads it or, once its blob is gone (a correction or an
        overwrite of the same SOP Instance replaced it while a response was being sent), as
        the blob stored now has it: a correction keeps the pixel data byte for byte, so a
        multipart body begun on the old blob ends on the new one (a delete: NotFound)."""
        current = [reader]

        def read(number: int) -> bytes:
            try:
                return current[0].read(number)
            except BlobMissing:
                old = current[0].record
                fresh = self._reader.records(old.study, old.series, old.instance)[0]
                same = (fresh.number_of_frames, fresh.transfer_syntax) == (
                    old.number_of_frames,
                    old.transfer_syntax,
                )
                if fresh.blob_key == old.blob_key or not same:
                    raise
                current[0] = self.frames(fresh)
                return current[0].read(number)

        return read

    def instance_stream(self, record: StoredRecord, target: str) -> ByteStream:
        """The whole instance as a Part-10 stream in *target* (stored or transcoded)."""
        if target == record.transfer_syntax:
            return ByteStream(blob_chunks(self._blobs, record.blob_key), record.size)
        info = self._decodable(record, target)
        return self._transcoder.instance(self._blobs, self.frames(record), info, target)

    def read_ranges(
        self, record: StoredRecord, ranges: Iterable[tuple[int, int]]
    ) -> Iterator[bytes]:
        """Bytes of the stored blob, one (offset, length) range at a time."""
        return self._blobs.read_ranges(record.blob_key, ranges)

    def blob_size(self, record: StoredRecord) -> int:
        """The stored blob's length; BlobMissing shows a record to be stale."""
        return self._blobs.size(record.blob_key)

    def local_file(self, item: InstanceFile) -> AbstractContextManager[Path]:
        """A local file of the stored instance, for senders that stream from a path."""
        return self._blobs.local_file(item.blob_key)

    def transcoded_file(self, item: InstanceFile, target: str) -> Path:
        """The instance re-encoded as *target* in a new file of the staging area (the caller
        deletes it), one frame in memory at a time; CodecError when it cannot be."""
        record = self._reader.records(item.study, item.series, item.instance)[0]
        info = self._decodable(record, target)
        path = self._blobs.staging_area() / f"transcoded-{secrets.token_hex(8)}.dcm"
        stream = self._transcoder.instance(self._blobs, self.frames(record), info, target, False)
        try:
            with open(path, "wb") as fp:
                for chunk in stream.chunks:
                    fp.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _decodable(self, record: StoredRecord, target: str) -> ImageInfo:
        info = self.image_info(record)
        if info is None or target not in self.transcode_targets(record):
            raise CodecError(
                f"instance {record.instance} stored as {record.transfer_syntax} cannot be "
                f"converted to {target}"
            )
        return info

    # -- de-identified exports (storage.deid, wsiarchive.export) ---------------------------------
    def export_key(self, project: str, *, who: Principal) -> bytes:
        """The secret key of export project *project*, made on its first use: the pseudonyms
        and UIDs of its exports derive from it. Administrators only."""
        require(who, Scope.ADMIN)
        name = project.strip()
        if not name or len(name) > PROJECT_NAME:
            raise ValueError(f"an export project name has 1 to {PROJECT_NAME} characters")
        return self._pseudonyms.key(name, who.subject)

    def record_pseudonyms(
        self, project: str, entries: Iterable[tuple[str, str, str]], *, who: Principal
    ) -> int:
        """Keep (kind, original, pseudonym) entries in the map of *project*."""
        require(who, Scope.ADMIN)
        return self._pseudonyms.record(project.strip(), entries)

    def find_pseudonyms(
        self, value: str, project: str | None = None, *, who: Principal
    ) -> list[Pseudonym]:
        """The map entries whose original or pseudonym is *value*: administrators only, and
        each look-up is in the audit trail."""
        require(who, Scope.ADMIN)
        found = self._pseudonyms.find(value.strip(), project.strip() if project else None)
        self._security(who, f"looked up the pseudonym map of {project or 'every project'}", "")
        return found

    def export_projects(self, *, who: Principal) -> list[str]:
        require(who, Scope.ADMIN)
        return self._pseudonyms.projects()

    # -- identity and audit -----------------------------------------------------------------------
    def authenticate_token(self, text: str) -> Principal | None:
        """The principal of an API token or share link, or None when it is not an active one
        (a revocation is seen within token_recheck_seconds)."""
        found = self._verified.get_or_make(text, lambda: self._tokens.verify(text))
        if found is None or not found.active(_utcnow()):
            return None
        return found.principal()

    def create_token(
        self,
        name: str,
        scopes: frozenset[Scope],
        *,
        who: Principal,
        groups: frozenset[str] | None = None,
        study: str | None = None,
        lifetime: timedelta | None = None,
    ) -> tuple[TokenInfo, str]:
        """A new API token (or, with *study*, a read-only share link of that study) and its
        text, shown once. An administrator creates tokens; a share link needs only to see the
        study, and never grants more than reading it."""
        if study is None:
            require(who, Scope.ADMIN)
        else:
            self.records(study, who=who)  # NotFound unless *who* sees it
            scopes, groups = frozenset({Scope.READ}), None
        info, text = self._tokens.create(name, scopes, groups, study, who.subject, lifetime)
        what = "share link" if study else "token"
        self._security(who, f"created {what} {info.token_id} ({name})", study or "")
        return info, text

    def tokens(self, *, who: Principal) -> list[TokenInfo]:
        require(who, Scope.ADMIN)
        return self._tokens.list()

    def revoke_token(self, token_id: str, *, who: Principal) -> bool:
        require(who, Scope.ADMIN)
        revoked = self._tokens.revoke(token_id)
        self._verified.clear()
        self._security(who, f"revoked token {token_id}", "", revoked)
        return revoked

    def _security(self, who: Principal, detail: str, study: str, success: bool = True) -> None:
        self._audit.add([_by(who, Operation.SECURITY, study=study, success=success, detail=detail)])

    def audit(self, record: AuditRecord) -> None:
        """Record an access in the audit trail; the same access repeated within the repeat
        window (e.g. a viewer's tiles of one instance) is recorded once."""
        key = (
            record.actor,
            record.source,
            record.operation.value,
            record.study,
            record.series,
            record.instance,
            record.outcome,
        )
        if record.detail == "" and self._audited.get(key):
            return
        if record.study and not record.patient_id:
            found = patients(self._database.engine, [record.study]).get(record.study)
            if found:
                record = replace(record, patient_id=found[0], patient_name=found[1])
        self._audit.add([record])
        self._audited.put(key, True)

    def audit_events(self, query: AuditQuery, *, who: Principal) -> list[AuditRecord]:
        require(who, Scope.ADMIN)
        return self._audit.search(query)

    def unexported_audit(self, limit: int) -> list[AuditRecord]:
        """The oldest events not yet exported as DICOM Audit Messages."""
        return self._audit.unexported(limit)

    def mark_audit_exported(self, pks: Sequence[int]) -> None:
        self._audit.mark_exported(pks)

    # -- rendering -------------------------------------------------------------------------------
    def images(self, records: Sequence[StoredRecord]) -> list[Image]:
        """The images among *records* that can be rendered."""
        return self._renderer.images(records)

    def render(
        self,
        record: StoredRecord,
        request: RenderRequest,
        frame: int | None = None,
        levels: Sequence[Image] = (),
    ) -> Rendered:
        """One rendered image of an instance (or of one frame), read from the best of
        *levels* (the images of its series)."""
        return self._renderer.render(record, request, frame, levels)

    def thumbnail(
        self, records: Sequence[StoredRecord], request: RenderRequest, frame: int | None = None
    ) -> Rendered:
        """A thumbnail standing for *records*, showing no patient data."""
        return self._renderer.thumbnail(records, request, frame)


def _require_feed(who: Principal) -> None:
    """The change feed names the studies of every access group, deleted ones too: it needs
    the read scope and an identity that sees every study."""
    require(who, Scope.READ)
    if not who.unrestricted:
        raise Forbidden(
            f"{who.subject} may not read the change feed: it needs an identity that sees "
            "every access group"
        )


def _by(who: Principal, operation: Operation, **fields: Any) -> AuditRecord:
    """An audit record of *operation* by *who*, now."""
    return AuditRecord(_utcnow(), who.subject, who.kind.value, who.source, operation, **fields)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def migrate_index(config: ArchiveConfig) -> Revisions:
    """Upgrade the index *config* names to the newest schema (`wsiarchive migrate`); the
    revisions it was at before."""
    engine = create_index_engine(config.database, config.database_pool)
    try:
        return migrate(engine)
    finally:
        engine.dispose()


def index_revisions(config: ArchiveConfig) -> Revisions:
    """Where the schema of the index *config* names is, and where this build needs it."""
    engine = create_index_engine(config.database, config.database_pool)
    try:
        return revisions(engine)
    finally:
        engine.dispose()


def open_archive(config: ArchiveConfig) -> Archive:
    """Open (and migrate, unless migrate_on_start is off) the index and the blob store
    *config* names."""
    database = Database.open(config.database, config.database_pool, upgrade=config.migrate_on_start)
    return Archive(database, open_blob_store(config), config)
