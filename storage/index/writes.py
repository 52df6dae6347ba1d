"""Writing the study index: claiming, committing and releasing instances (the two phases of
every ingest), bulk loading, deleting, and the rows of patients, studies and series."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pydicom.dataset import Dataset
from sqlalchemy import Engine, delete, exists, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from storage.access import Principal, PrincipalKind
from storage.dicom.dataset import Identity
from storage.dicom.levels import Level
from storage.errors import (
    ConflictingInstance,
    DuplicateInstance,
    Forbidden,
    InstanceBusy,
    NotFound,
    OutOfResources,
)
from storage.index import changes
from storage.index.changes import Event
from storage.index.columns import (
    instance_values,
    patient_values,
    request_attributes,
    series_values,
    specimens,
    study_values,
)
from storage.index.counts import Counts, instance_left, series_left
from storage.index.engine import WRITE
from storage.index.ladder import ladder
from storage.index.models import (
    FrameIndex,
    Instance,
    InstanceMetadata,
    Patient,
    RequestAttributes,
    Series,
    Specimen,
    Status,
    Study,
)
from storage.index.reads import not_found
from storage.records import Action

# A claim this old belongs to a writer that died; a new writer may take it over.
STALE_CLAIM = timedelta(minutes=30)
T = TypeVar("T")


# SQLite's SQLITE_FULL ("database or disk is full") and PostgreSQL's class 53 (insufficient
# resources: 53100 disk_full, 53200 out_of_memory).
_SQLITE_FULL = "database or disk is full"
_PG_RESOURCES = "53"


def is_disk_full(exc: DBAPIError) -> bool:
    """True when a database error says the index's storage is full."""
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if isinstance(state, str) and state.startswith(_PG_RESOURCES):
        return True
    return _SQLITE_FULL in str(exc.orig)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Claim:
    """The right to write one SOP instance: its row and the blob key it will get."""

    instance_pk: int
    key: str
    previous_key: str | None  # the blob this write replaces (overwrite policy)
    abandoned_key: str | None  # a dead writer's blob to remove


@dataclass(frozen=True)
class Entry:
    """Everything the index records about one instance being stored."""

    identity: Identity
    dataset: Dataset
    transfer_syntax: str
    number_of_frames: int
    size: int
    document: bytes
    frames: bytes | None
    key: str
    content_hash: str | None = None  # SHA-256 of the blob (hex)
    access_group: str = ""  # of the study, if this instance creates it
    who: Principal | None = None  # who stores: the study must be one it may see


def stored_by(who: Principal | None) -> str:
    """What Instance.stored_by keeps of who stores: a DICOM peer's calling AE title."""
    return who.subject if who is not None and who.kind is PrincipalKind.AE else ""


class IndexWriter:
    """Every write of the index tables, as SQLAlchemy expressions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**WRITE)

    # -- writing -------------------------------------------------------------------------------
    def _write(self, work: Callable[[Session], T], attempts: int = 5) -> T:
        """Run *work* in a write transaction, retrying when a concurrent writer collided;
        OutOfResources when the index's disk is full (retrying cannot help)."""
        for attempt in range(attempts):
            try:
                with Session(self._writer, expire_on_commit=False) as session, session.begin():
                    return work(session)
            except (IntegrityError, OperationalError) as exc:
                if is_disk_full(exc):
                    raise OutOfResources(f"the index cannot write: {exc.orig}") from exc
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def claim(self, sop_instance_uid: str, key: str, overwrite: bool) -> Claim:
        """Reserve *sop_instance_uid* for a write whose blob will be *key*."""

        def work(session: Session) -> Claim:
            # FOR UPDATE: on PostgreSQL a second claim waits for the first and then sees it
            # (else both read "no claim" and the later one silently takes the row over).
            row = session.scalar(
                select(Instance)
                .where(Instance.sop_instance_uid == sop_instance_uid)
                .with_for_update()
            )
            now = _now()
            if row is None:
                row = Instance(
                    sop_instance_uid=sop_instance_uid,
                    status=Status.PENDING,
                    pending_key=key,
                    claimed_at=now,
                    number_of_frames=0,
                    size=0,
                )
                session.add(row)
                session.flush()
                return Claim(row.pk, key, None, None)
            abandoned = None
            if row.pending_key is not None:
                if row.claimed_at is not None and now - row.claimed_at < STALE_CLAIM:
                    raise InstanceBusy(
                        f"SOP Instance {sop_instance_uid} is being stored by another request"
                    )
                abandoned = row.pending_key
            if row.status == Status.STORED and not overwrite:
                raise DuplicateInstance(
                    f"SOP Instance {sop_instance_uid} is stored already "
                    "(the archive's duplicate policy is to reject)"
                )
            row.pending_key, row.claimed_at = key, now
            previous = row.blob_key if row.status == Status.STORED else None
            return Claim(row.pk, key, previous, abandoned)

        try:
            return self._write(work, attempts=1)
        except IntegrityError as exc:
            raise InstanceBusy(
                f"SOP Instance {sop_instance_uid} is being stored by another request"
            ) from exc

    def commit(self, claim: Claim, entry: Entry) -> None:
        """Make a claimed instance visible: index values, metadata, frame table, ``stored``."""
        self.commit_all([(claim, entry)])

    def commit_all(self, claimed: Sequence[tuple[Claim, Entry]]) -> None:
        """Make claimed instances visible together, in one transaction (all or none)."""

        self._write(lambda session: self._commit(session, claimed))

    def correct_all(self, claimed: Sequence[tuple[Claim, Entry]], study: bool) -> None:
        """Make corrected instances visible together, in one transaction, and with *study*
        (the whole study corrected) its study row and patient take the corrected values
        (an ingest keeps the first instance's: see _fill_empty)."""

        def work(session: Session) -> None:
            if study and claimed:
                self._correct_study(session, claimed[0][1])
            # A correction changes attributes, not who stored the object: the calling AE
            # title (forward_rules' source_ae) stays.
            rows = [session.get(Instance, claim.instance_pk) for claim, _ in claimed]
            sources = {row.pk: row.stored_by for row in rows if row is not None}
            self._commit(session, claimed)
            for row in rows:
                if row is not None:
                    row.stored_by = sources[row.pk]

        self._write(work, attempts=1)

    def _correct_study(self, session: Session, entry: Entry) -> None:
        """The study row takes *entry*'s study values; its patient row is the one of the
        corrected Patient ID (and issuer), found, made, or this one updated when no other
        study shares it. A patient left without studies is removed."""
        row = session.scalar(select(Study).where(Study.study_instance_uid == entry.identity.study))
        if row is None:
            raise NotFound(not_found(entry.identity.study, None, None))
        for name, value in study_values(entry.dataset).items():
            setattr(row, name, value)
        values = patient_values(entry.dataset)
        old = row.patient_pk
        shared = session.scalar(select(exists().where(Study.patient_pk == old, Study.pk != row.pk)))
        target = None
        if values["patient_id"]:
            target = session.scalar(
                select(Patient).where(
                    Patient.patient_id == values["patient_id"],
                    Patient.issuer_of_patient_id == values["issuer_of_patient_id"],
                )
            )
        if target is None and not shared:
            target = session.get(Patient, old)
        if target is None:
            target = Patient(**values)
            session.add(target)
            session.flush()
        for name, value in values.items():
            setattr(target, name, value)
        row.patient_pk = target.pk
        session.flush()
        if old != target.pk and not session.scalar(select(exists().where(Study.patient_pk == old))):
            session.execute(delete(Patient).where(Patient.pk == old))

    def _commit(self, session: Session, claimed: Sequence[tuple[Claim, Entry]]) -> None:
        events = []
        counts = Counts()
        for claim, entry in claimed:
            row = session.get(Instance, claim.instance_pk)
            if row is None or row.pending_key != claim.key:
                raise InstanceBusy(
                    f"the claim on {entry.identity.instance} was lost to another writer"
                )
            old_series_pk = row.series_pk if row.status == Status.STORED else None
            fresh = row.status != Status.STORED
            self._apply(session, row, entry, claim.key, fresh, counts)
            if old_series_pk is not None and old_series_pk != row.series_pk:
                # An overwrite that moved the instance to another series.
                self._left(session, old_series_pk)
            events.append(_event(session, row, Action.CREATE if fresh else Action.UPDATE))
        counts.apply(session)
        changes.record(session, events)  # last: see changes.record on the ordering

    def load(self, entries: list[Entry]) -> None:
        """Bulk loading: store new instances whose blobs are in place, in one transaction.

        The index values come from the same functions as ``commit`` uses (``_series`` for the
        patient, study and series rows, ``instance_values`` and ``specimens`` for the rest);
        only the instance rows are inserted in bulk. No claims are taken: nothing else may be
        writing these SOP Instance UIDs.
        """

        def work(session: Session) -> None:
            counts = Counts()
            series_pk: dict[str, int] = {}
            study_of: dict[int, int] = {}
            rows = []
            now = _now()
            for entry in entries:
                if entry.identity.series not in series_pk:
                    series = self._series(session, entry, counts)
                    series_pk[entry.identity.series] = series.pk
                    study_of[series.pk] = series.study_pk
                into = series_pk[entry.identity.series]
                counts.instance(into, study_of[into], 1)
                rows.append(
                    {
                        "sop_instance_uid": entry.identity.instance,
                        "series_pk": series_pk[entry.identity.series],
                        "status": Status.STORED,
                        "sop_class_uid": entry.identity.sop_class,
                        **instance_values(entry.dataset),
                        "number_of_frames": entry.number_of_frames,
                        "transfer_syntax_uid": entry.transfer_syntax,
                        "size": entry.size,
                        "blob_key": entry.key,
                        "content_hash": entry.content_hash,
                        "stored_at": now,
                        "stored_by": stored_by(entry.who),
                    }
                )
            pks = dict(
                session.execute(
                    insert(Instance).returning(Instance.sop_instance_uid, Instance.pk), rows
                ).all()
            )
            specimen_rows, documents, frame_rows = [], [], []
            for entry in entries:
                pk = pks[entry.identity.instance]
                specimen_rows += [{"instance_pk": pk, **item} for item in specimens(entry.dataset)]
                documents.append({"instance_pk": pk, "document": entry.document})
                if entry.frames is not None:
                    frame_rows.append({"instance_pk": pk, "ranges": entry.frames})
            for table, values in (
                (Specimen, specimen_rows),
                (InstanceMetadata, documents),
                (FrameIndex, frame_rows),
            ):
                if values:
                    session.execute(insert(table), values)
            counts.apply(session)
            groups = {
                uid: group
                for uid, group in session.execute(
                    select(Study.study_instance_uid, Study.access_group).where(
                        Study.study_instance_uid.in_({e.identity.study for e in entries})
                    )
                )
            }
            changes.record(
                session,
                [
                    Event(Action.CREATE, *_uids(e.identity), groups.get(e.identity.study, ""))
                    for e in entries
                ],
            )

        self._write(work, attempts=1)

    def _apply(
        self, session: Session, row: Instance, entry: Entry, key: str, fresh: bool, counts: Counts
    ) -> None:
        series = self._series(session, entry, counts)
        if fresh or row.series_pk != series.pk:
            counts.instance(series.pk, series.study_pk, 1)
        row.series_pk = series.pk
        row.sop_class_uid = entry.identity.sop_class
        for name, value in instance_values(entry.dataset).items():
            setattr(row, name, value)
        row.number_of_frames = entry.number_of_frames
        row.transfer_syntax_uid = entry.transfer_syntax
        row.size = entry.size
        row.content_hash = entry.content_hash
        row.blob_key, row.pending_key, row.claimed_at = key, None, None
        row.tier, row.recall_requested_at = "", None  # a new blob is in the first tier
        row.status = Status.STORED
        row.stored_at = _now()
        row.stored_by = stored_by(entry.who)
        session.flush()
        if not fresh:
            session.execute(delete(Specimen).where(Specimen.instance_pk == row.pk))
            session.execute(delete(FrameIndex).where(FrameIndex.instance_pk == row.pk))
            session.execute(delete(InstanceMetadata).where(InstanceMetadata.instance_pk == row.pk))
        for item in specimens(entry.dataset):
            session.add(Specimen(instance_pk=row.pk, **item))
        session.add(InstanceMetadata(instance_pk=row.pk, document=entry.document))
        if entry.frames is not None:
            session.add(FrameIndex(instance_pk=row.pk, ranges=entry.frames))
        session.flush()

    def release(self, claim: Claim) -> None:
        """Give up a claim after a failed write; a new instance's row disappears."""

        def work(session: Session) -> None:
            row = session.get(Instance, claim.instance_pk)
            if row is None or row.pending_key != claim.key:
                return
            if row.status == Status.PENDING:
                session.delete(row)
            else:
                row.pending_key, row.claimed_at = None, None

        self._write(work)

    def delete(self, sop_instance_uid: str) -> str | None:
        """Remove a stored instance from the index; returns its blob key (None if absent)."""

        def work(session: Session) -> str | None:
            row = session.scalar(
                select(Instance).where(
                    Instance.sop_instance_uid == sop_instance_uid, Instance.status == Status.STORED
                )
            )
            if row is None:
                return None
            key, event = self._remove(session, row)
            changes.record(session, [event])
            return key

        return self._write(work)

    def delete_matching(
        self,
        study: str,
        series: str | None = None,
        instance: str | None = None,
        who: Principal | None = None,
    ) -> list[str]:
        """Remove every stored instance of a study, series or single instance that *who* may
        see, in one transaction; returns their blob keys. NotFound when there is none (a
        study *who* may not see is not found, as if it were not stored)."""

        def work(session: Session) -> list[str]:
            query = ladder(select(Instance), Level.INSTANCE, [Level.STUDY], who).where(
                Study.study_instance_uid == study
            )
            if series is not None:
                query = query.where(Series.series_instance_uid == series)
            if instance is not None:
                query = query.where(Instance.sop_instance_uid == instance)
            rows = session.scalars(query.order_by(Instance.pk)).all()
            if not rows:
                raise NotFound(not_found(study, series, instance))
            removed = [self._remove(session, row) for row in rows]
            changes.record(session, [event for _, event in removed])
            return [key for key, _ in removed if key]

        return self._write(work)

    def _remove(self, session: Session, row: Instance) -> tuple[str | None, Event]:
        """Remove one instance row, keeping the counters, and its series, study and patient
        when it leaves them empty: the one removal path (every delete goes through it).
        Returns its blob key and its change feed event."""
        event = _event(session, row, Action.DELETE)
        key, series_pk, stored = row.blob_key, row.series_pk, row.status == Status.STORED
        session.delete(row)
        session.flush()
        if series_pk is not None and stored:
            self._left(session, series_pk)
        return key, event

    def _left(self, session: Session, series_pk: int) -> None:
        """A stored instance left the series *series_pk*: one fewer in it and its study, and
        the series removed when that was its last instance (then its study and patient when
        left empty)."""
        found = instance_left(session, series_pk)
        if found is None or found[1] > 0:
            return
        study_pk = found[0]
        series = session.get(Series, series_pk)
        if series is not None:
            session.delete(series)
            session.flush()
        if series_left(session, study_pk) != 0:
            return
        study = session.get(Study, study_pk)
        if study is None:
            return
        patient_pk = study.patient_pk
        session.delete(study)
        session.flush()
        if not session.scalar(select(exists().where(Study.patient_pk == patient_pk))):
            session.execute(delete(Patient).where(Patient.pk == patient_pk))

    def abandoned_after(self) -> timedelta:
        """How old a claim (or a staged file) must be for a start-up recovery to take it as
        abandoned: any age on SQLite (one machine, no writer running yet); STALE_CLAIM on a
        shared index (PostgreSQL: other servers and workers are writing now)."""
        return timedelta(0) if self.engine.dialect.name == "sqlite" else STALE_CLAIM

    def abandoned_claims(self) -> list[Claim]:
        """The open claims a start-up recovery may release (abandoned_after)."""
        query = select(Instance.pk, Instance.pending_key).where(Instance.pending_key.is_not(None))
        if self.abandoned_after():
            query = query.where(Instance.claimed_at < _now() - self.abandoned_after())
        with Session(self.engine) as session:
            rows = session.execute(query).all()
        return [Claim(pk, key, None, None) for pk, key in rows if key is not None]

    # -- patient / study / series rows -----------------------------------------------------------
    def _patient(self, session: Session, dataset: Dataset) -> Patient:
        values = patient_values(dataset)
        patient = None
        if values["patient_id"]:
            patient = session.scalar(
                select(Patient).where(
                    Patient.patient_id == values["patient_id"],
                    Patient.issuer_of_patient_id == values["issuer_of_patient_id"],
                )
            )
        if patient is None:
            patient = Patient(**values)
            session.add(patient)
            session.flush()
        else:
            _fill_empty(patient, values)
        return patient

    def _series(self, session: Session, entry: Entry, counts: Counts) -> Series:
        identity, dataset = entry.identity, entry.dataset
        study = session.scalar(select(Study).where(Study.study_instance_uid == identity.study))
        if study is None:
            patient = self._patient(session, dataset)
            study = Study(
                patient_pk=patient.pk,
                study_instance_uid=identity.study,
                access_group=entry.access_group,
                **study_values(dataset),
            )
            session.add(study)
            session.flush()
        elif entry.who is not None and not entry.who.sees(
            study.study_instance_uid, study.access_group
        ):
            # The same words as for a new study of a group it may not store into.
            raise Forbidden(f"{entry.who.subject} may not store instance {identity.instance}")
        else:
            _fill_empty(study, study_values(dataset))
        series = session.scalar(select(Series).where(Series.series_instance_uid == identity.series))
        if series is None:
            series = Series(
                study_pk=study.pk, series_instance_uid=identity.series, **series_values(dataset)
            )
            session.add(series)
            session.flush()
            counts.series(study.pk, 1)
        elif series.study_pk != study.pk:
            raise ConflictingInstance(
                f"Series {identity.series} is stored in another study than {identity.study}"
            )
        else:
            _fill_empty(series, series_values(dataset))
        add_request_attributes(session, series.pk, dataset)
        return series


def _uids(identity: Identity) -> tuple[str, str, str]:
    return identity.study, identity.series, identity.instance


def _event(session: Session, row: Instance, action: Action) -> Event:
    """The change feed event of *action* on the stored instance *row*."""
    series = session.get(Series, row.series_pk) if row.series_pk is not None else None
    study = session.get(Study, series.study_pk) if series is not None else None
    return Event(
        action,
        study.study_instance_uid if study is not None else "",
        series.series_instance_uid if series is not None else "",
        row.sop_instance_uid,
        study.access_group if study is not None else "",
    )


def add_request_attributes(session: Session, series_pk: int, dataset: Dataset) -> None:
    """Record the instance's Request Attributes Sequence items the series does not have yet."""
    items = request_attributes(dataset)
    if not items:
        return
    known = {
        tuple(row)
        for row in session.execute(
            select(
                RequestAttributes.requested_procedure_id,
                RequestAttributes.scheduled_procedure_step_id,
                RequestAttributes.accession_number,
            ).where(RequestAttributes.series_pk == series_pk)
        )
    }
    for item in items:
        key = (
            item["requested_procedure_id"],
            item["scheduled_procedure_step_id"],
            item["accession_number"],
        )
        if key not in known:
            known.add(key)
            session.add(RequestAttributes(series_pk=series_pk, **item))


def _fill_empty(row: object, values: Mapping[str, object]) -> None:
    """Keep what the first instance said; fill in only what it left empty."""
    for name, value in values.items():
        if value not in (None, "") and getattr(row, name) in (None, ""):
            setattr(row, name, value)
