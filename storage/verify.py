"""`wsiarchive verify`: the index compared with the blob store, and the repairs that are safe."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine

from storage.blobs import BlobStore
from storage.dicom.part10 import read_part10
from storage.errors import ArchiveError
from storage.index import integrity
from storage.index.integrity import BlobRow
from storage.index.writes import Claim, IndexWriter
from storage.tiers.store import canonical, needs_recall


class Problem(StrEnum):
    """What verify finds; the comment says what --repair does."""

    MISSING_BLOB = "missing-blob"  # listed only: the instance is lost unless restored
    ORPHAN_BLOB = "orphan-blob"  # moved to the quarantine folder once older than the bound
    SIZE_MISMATCH = "size-mismatch"  # listed only: a damaged blob is never deleted
    HASH_MISMATCH = "hash-mismatch"  # listed only
    STALE_CLAIM = "stale-claim"  # released (its blob, if any, quarantined) past the bound
    FRAME_TABLE = "frame-table-mismatch"  # rebuilt from the blob
    UNREADABLE_BLOB = "unreadable-blob"  # listed only: the blob no longer parses
    MISSING_HASH = "missing-hash"  # recorded (a note, not a problem)


NOTES = frozenset({Problem.MISSING_HASH})


@dataclass
class Finding:
    problem: Problem
    key: str
    instance: str | None
    detail: str
    repaired: bool = False


@dataclass
class Report:
    """What one verify run found, and repaired."""

    instances: int = 0
    blobs: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def remaining(self) -> list[Finding]:
        """Problems left after the repairs (notes do not count)."""
        return [f for f in self.findings if not f.repaired and f.problem not in NOTES]


@dataclass(frozen=True)
class Bounds:
    """How old an orphan blob or an open claim must be before it counts as abandoned (a
    write in progress has both for a moment)."""

    orphan_seconds: float
    claim_seconds: float


def verify(
    engine: Engine, writer: IndexWriter, blobs: BlobStore, bounds: Bounds, repair: bool
) -> Report:
    """Check every index row against its blob and every blob against the index."""
    report = Report()
    known: set[str] = set()
    now = datetime.now(UTC).replace(tzinfo=None)
    for row in integrity.blob_rows(engine):
        report.instances += 1
        if row.pending_key is not None:
            known.add(canonical(blobs, row.pending_key))
            _claim(report, writer, blobs, row, now, bounds, repair)
        if row.blob_key is not None and row.status == integrity.Status.STORED:
            known.add(canonical(blobs, row.blob_key))
            _stored(report, engine, blobs, row, repair)
    limit = time.time() - bounds.orphan_seconds
    for key, mtime in blobs.blob_keys():
        report.blobs += 1
        if key in known:
            continue
        finding = Finding(Problem.ORPHAN_BLOB, key, None, "no index row names this blob")
        if repair and mtime <= limit:
            finding.detail += f"; moved to {blobs.quarantine(key)}"
            finding.repaired = True
        report.findings.append(finding)
    return report


def _claim(
    report: Report,
    writer: IndexWriter,
    blobs: BlobStore,
    row: BlobRow,
    now: datetime,
    bounds: Bounds,
    repair: bool,
) -> None:
    assert row.pending_key is not None
    age = now - row.claimed_at if row.claimed_at else timedelta.max
    if age < timedelta(seconds=bounds.claim_seconds):
        return  # a write in progress
    finding = Finding(
        Problem.STALE_CLAIM, row.pending_key, row.sop_instance_uid, f"claimed {age} ago"
    )
    if repair:
        writer.release(Claim(row.pk, row.pending_key, None, None))
        blobs.delete(row.pending_key)  # never committed: nothing acknowledged it
        finding.repaired = True
    report.findings.append(finding)


def _stored(report: Report, engine: Engine, blobs: BlobStore, row: BlobRow, repair: bool) -> None:
    assert row.blob_key is not None
    key, instance = row.blob_key, row.sop_instance_uid
    try:
        size = blobs.size(key)
    except ArchiveError:
        report.findings.append(Finding(Problem.MISSING_BLOB, key, instance, "the blob is gone"))
        return
    if size != row.size:
        detail = f"the index says {row.size} bytes, the blob has {size}"
        report.findings.append(Finding(Problem.SIZE_MISMATCH, key, instance, detail))
        return
    if needs_recall(blobs, key):
        return  # its bytes cannot be read before a recall: checked by its size alone
    hasher = hashlib.sha256()
    with blobs.open(key) as fp:
        while chunk := fp.read(8 << 20):
            hasher.update(chunk)
    digest = hasher.hexdigest()
    if row.content_hash is None:
        finding = Finding(Problem.MISSING_HASH, key, instance, "no hash recorded")
        if repair:
            integrity.record_hash(engine, row.pk, digest)
            finding.repaired = True
        report.findings.append(finding)
    elif digest != row.content_hash:
        detail = f"SHA-256 {digest}, recorded {row.content_hash}"
        report.findings.append(Finding(Problem.HASH_MISMATCH, key, instance, detail))
        return
    with blobs.local_file(key) as path:
        try:
            parsed = read_part10(path)
        except ArchiveError as exc:
            report.findings.append(Finding(Problem.UNREADABLE_BLOB, key, instance, exc.reason))
            return
    rebuilt = parsed.frames.to_bytes() if parsed.frames is not None else None
    if rebuilt != row.frames:
        finding = Finding(
            Problem.FRAME_TABLE, key, instance, "the frame table does not match the blob"
        )
        if repair and rebuilt is not None:
            integrity.replace_frames(engine, row.pk, rebuilt)
            finding.repaired = True
        report.findings.append(finding)
