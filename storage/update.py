"""Correcting the attributes of stored instances (IHE Patient Information Reconciliation,
dcm4chee's "update attributes", Azure's bulk update): each object is rewritten into a new
blob with the same two phases as an ingest (claim, place, commit), so that a crash leaves
only claims for the start-up recovery, and a reader sees the old object or the new one."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import replace

from storage.blobs import BlobStore
from storage.dicom.corrections import Correction, rewrite
from storage.dicom.part10 import read_part10
from storage.errors import ArchiveError
from storage.index.writes import Claim, Entry, IndexWriter
from storage.ingest import Storing, entry_of
from storage.records import StoredRecord

log = logging.getLogger(__name__)


def correct(
    writer: IndexWriter,
    blobs: BlobStore,
    how: Storing,
    records: Sequence[StoredRecord],
    correction: Correction,
    whole_study: bool,
) -> int:
    """Rewrite every instance of *records* (one study) with *correction*, all committed in
    one transaction (with the study and patient rows when *whole_study*); returns how many.

    Each instance is claimed first, so the header read is the one of the blob stored now
    (a concurrent correction or overwrite waits or fails, InstanceBusy, and cannot be lost);
    its corrected copy is placed under a new key, re-parsed as an ingest parses (new frame
    offsets, metadata, index values); after the commit the old blobs are removed. A reader
    holding an old record finds its blob gone (BlobMissing) and reads the index again.
    """
    placed: list[tuple[Claim, Entry]] = []
    try:
        for record in records:
            placed.append(_rewritten(writer, blobs, how, record, correction))
        writer.correct_all(placed, whole_study)
    except BaseException:
        for claim, entry in reversed(placed):
            blobs.delete(entry.key)
            try:
                writer.release(claim)
            except ArchiveError as exc:  # the next start-up's recovery releases it
                log.warning("could not release the claim on %s: %s", entry.identity.instance, exc)
        raise
    for claim, entry in placed:
        if claim.previous_key and claim.previous_key != entry.key:
            try:
                blobs.delete(claim.previous_key)
            except (OSError, ValueError) as exc:  # an orphan for verify, not a failure
                log.warning("corrected instance's old blob %s remains: %s", claim.previous_key, exc)
    return len(placed)


def _rewritten(
    writer: IndexWriter,
    blobs: BlobStore,
    how: Storing,
    record: StoredRecord,
    correction: Correction,
) -> tuple[Claim, Entry]:
    """Claim one instance, write its corrected copy and place it as its new blob."""
    key = f"{record.study}/{record.series}/{record.instance}.{secrets.token_hex(6)}.dcm"
    claim = writer.claim(record.instance, key, overwrite=True)
    try:
        if claim.abandoned_key:
            blobs.delete(claim.abandoned_key)
        source = claim.previous_key or record.blob_key
        path = blobs.staging_area() / f"update-{secrets.token_hex(8)}.dcm"
        try:
            with blobs.local_file(source) as local:
                rewrite(local, correction, path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        staged = blobs.adopt(path)
        try:
            staged.finish()
            parsed = read_part10(staged.path)
            entry = replace(entry_of(parsed, record.study, how, staged.content_hash), key=key)
            blobs.place(staged, key)
        finally:
            staged.discard()
    except BaseException:
        blobs.delete(key)
        try:
            writer.release(claim)
        except ArchiveError as exc:
            log.warning("could not release the claim on %s: %s", record.instance, exc)
        raise
    return claim, entry
