"""The one two-phase ingest every front door uses, and the recovery of writes a crash
interrupted (after Microsoft's dicom-server: claim, place the blob, commit)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from storage import metrics
from storage.access import Principal, PrincipalKind, group_of
from storage.blobs import BlobStore, StagedBlob
from storage.config import DuplicatePolicy
from storage.dicom.dataset import Identity, named_uids
from storage.dicom.document import PIXEL_DATA, build_document
from storage.dicom.part10 import DECODE_ERRORS, ParsedInstance, read_part10
from storage.errors import ArchiveError, Forbidden, InvalidInstance, StudyMismatch
from storage.index.writes import Claim, Entry, IndexWriter
from storage.records import StoredInstance

log = logging.getLogger(__name__)
# Each front door authenticates its own kind of principal, so the kind names the door.
_DOORS = {PrincipalKind.AE: metrics.Door.C_STORE, PrincipalKind.LOCAL: metrics.Door.IMPORT}


@dataclass(frozen=True)
class Storing:
    """How an ingest stores: the duplicate policy, the attribute naming a new study's access
    group, and who stores (which groups it may store into)."""

    policy: DuplicatePolicy
    group_attribute: str
    who: Principal


def ingest(
    writer: IndexWriter,
    blobs: BlobStore,
    how: Storing,
    staged: StagedBlob,
    study: str | None = None,
) -> StoredInstance:
    """Store one staged Part-10 instance; the staged file is consumed either way.

    The index row is claimed ``pending``, the blob is renamed into place atomically, then
    metadata, frame table and ``stored`` are committed in one transaction. A failure at any
    step undoes the earlier ones, so no query or retrieve ever sees half an instance.
    """
    return ingest_all(writer, blobs, how, [staged], study)[0]


def ingest_all(
    writer: IndexWriter,
    blobs: BlobStore,
    how: Storing,
    staged: Sequence[StagedBlob],
    study: str | None = None,
) -> list[StoredInstance]:
    """Store several staged instances as one (a converted slide): each is claimed and its
    blob placed, then all are committed in one transaction. A failure undoes them all; a
    crash leaves only claims, which no query sees and ``recover`` releases. The staged files
    are consumed either way."""
    placed: list[tuple[Claim, Entry, ParsedInstance]] = []
    door = _DOORS.get(how.who.kind, metrics.Door.STOW)
    try:
        for item in staged:
            placed.append(_claimed(writer, blobs, how, item, study))
        writer.commit_all([(claim, entry) for claim, entry, _ in placed])
    except BaseException as exc:
        metrics.count_ingest_failure(door, exc)
        # The blobs go first: on a full disk their space is what lets the releases commit.
        for claim, entry, _ in reversed(placed):
            blobs.delete(entry.key)
            try:
                writer.release(claim)
            except ArchiveError as exc:  # still full: the next start-up's recovery releases it
                log.warning("could not release the claim on %s: %s", entry.identity.instance, exc)
        raise
    finally:
        for item in staged:
            item.discard()
    stored = []
    for claim, entry, parsed in placed:
        if claim.previous_key and claim.previous_key != entry.key:
            blobs.delete(claim.previous_key)
        identity = entry.identity
        stored.append(
            StoredInstance(
                identity.study,
                identity.series,
                identity.instance,
                identity.sop_class,
                parsed.transfer_syntax,
                parsed.number_of_frames,
                parsed.size,
                claim.previous_key is not None,
            )
        )
    metrics.count_ingest(door, len(stored), sum(item.size for item in stored))
    return stored


def _claimed(
    writer: IndexWriter, blobs: BlobStore, how: Storing, staged: StagedBlob, study: str | None
) -> tuple[Claim, Entry, ParsedInstance]:
    """The first phase for one instance: parse it, claim its row, place its blob (the claim
    is given up again if the blob cannot be placed)."""
    named: tuple[str | None, str | None] = (None, None)
    try:
        staged.finish()
        parsed = read_part10(staged.path)
        entry, named = _decoded(parsed, study, how, staged.content_hash)
        claim = writer.claim(
            entry.identity.instance, entry.key, how.policy == DuplicatePolicy.OVERWRITE
        )
        if claim.abandoned_key:
            blobs.delete(claim.abandoned_key)
        try:
            blobs.place(staged, entry.key)
        except BaseException:
            blobs.delete(entry.key)
            try:
                writer.release(claim)
            except ArchiveError as exc:
                log.warning("could not release the claim on %s: %s", entry.identity.instance, exc)
            raise
    except ArchiveError as exc:
        if exc.sop_instance is None:
            exc.sop_class, exc.sop_instance = named
        raise
    return claim, entry, parsed


def _decoded(
    parsed: ParsedInstance, study: str | None, how: Storing, content_hash: str
) -> tuple[Entry, tuple[str | None, str | None]]:
    """The entry of a parsed instance and its named UIDs; an element pydicom cannot decode
    makes the instance unreadable, InvalidInstance (C000, PS3.18 Table I.2-2), not an
    internal error."""
    try:
        named = named_uids(parsed.dataset)
    except DECODE_ERRORS as exc:
        raise InvalidInstance(f"the DICOM data cannot be decoded: {exc}") from exc
    try:
        return entry_of(parsed, study, how, content_hash), named
    except ArchiveError as exc:
        if exc.sop_instance is None:
            exc.sop_class, exc.sop_instance = named
        raise
    except DECODE_ERRORS as exc:
        raise InvalidInstance(
            f"the DICOM data cannot be decoded: {exc}", named[0], named[1]
        ) from exc


def entry_of(parsed: ParsedInstance, study: str | None, how: Storing, content_hash: str) -> Entry:
    """What the index records of a parsed instance, and the blob key it will get."""
    identity = Identity.of(parsed.dataset)
    if study is not None and identity.study != study:
        raise StudyMismatch(
            f"instance {identity.instance} belongs to study {identity.study}, "
            f"not to the target study {study}"
        )
    group = group_of(parsed.dataset.get(how.group_attribute)) if how.group_attribute else ""
    if not how.who.sees(identity.study, group):
        raise Forbidden(f"{how.who.subject} may not store instance {identity.instance}")
    pixel = parsed.pixel_element
    document = build_document(
        parsed.dataset,
        identity.study,
        identity.series,
        identity.instance,
        pixel[1] if pixel else None,
        pixel[0] if pixel else PIXEL_DATA,
    )
    frames = parsed.frames.to_bytes() if parsed.frames is not None else None
    key = f"{identity.study}/{identity.series}/{identity.instance}.{secrets.token_hex(6)}.dcm"
    return Entry(
        identity,
        parsed.dataset,
        parsed.transfer_syntax,
        parsed.number_of_frames,
        parsed.size,
        document,
        frames,
        key,
        content_hash,
        group,
        how.who,
    )


def recover(writer: IndexWriter, blobs: BlobStore) -> int:
    """Undo writes interrupted by a crash; call before any writer starts. Returns a count."""
    claims = writer.abandoned_claims()
    for claim in claims:
        blobs.delete(claim.key)
        writer.release(claim)
    # A staging area shared by several servers (one blob directory on a shared filesystem)
    # holds their uploads and conversions in progress: only what is older than a stale claim.
    purged = blobs.purge_staging(writer.abandoned_after().total_seconds())
    if claims or purged:
        log.warning("recovered %d interrupted writes, %d staged uploads", len(claims), purged)
    return len(claims) + purged
