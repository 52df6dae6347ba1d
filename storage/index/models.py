"""Study index tables: patient, study, series, instance, plus per-instance metadata and frames.

Each column kept from a data set names its attribute: (group,element) VR VM."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Status(StrEnum):
    """Where an instance row is in the two-phase ingest."""

    PENDING = "pending"  # claimed; its blob is being written
    STORED = "stored"  # committed; visible to queries and retrieves


class Base(DeclarativeBase):
    pass


class Patient(Base):
    __tablename__ = "patient"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    # (0010,0020) LO 1
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    # (0010,0021) LO 1
    issuer_of_patient_id: Mapped[str] = mapped_column(String(64), default="")
    # (0010,0010) PN 1
    patient_name: Mapped[str] = mapped_column(String(400), default="")
    # Case- and accent-folded name for literal PN matching; its normalised words and their
    # Soundex codes for fuzzy matching (storage.dicom.values).
    patient_name_folded: Mapped[str] = mapped_column(String(400), default="", index=True)
    patient_name_words: Mapped[str] = mapped_column(String(500), default="")
    patient_name_phonetic: Mapped[str] = mapped_column(String(500), default="")
    # (0010,0030) DA 1
    patient_birth_date: Mapped[str] = mapped_column(String(8), default="")
    # (0010,0040) CS 1
    patient_sex: Mapped[str] = mapped_column(String(16), default="")

    # One row per (Patient ID, Issuer); patients without an ID are never merged.
    __table_args__ = (
        Index(
            "ux_patient_id",
            "patient_id",
            "issuer_of_patient_id",
            unique=True,
            sqlite_where=text("patient_id <> ''"),
            postgresql_where=text("patient_id <> ''"),
        ),
        Index("ix_patient_birth_date", "patient_birth_date"),
        # The partial unique index above is not usable for plain equality in SQLite.
        Index("ix_patient_patient_id", "patient_id"),
    )


class Study(Base):
    __tablename__ = "study"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patient.pk"), index=True)
    # (0020,000D) UI 1
    study_instance_uid: Mapped[str] = mapped_column(String(128), unique=True)
    # (0008,0020) DA 1
    study_date: Mapped[str] = mapped_column(String(8), default="", index=True)
    # (0008,0030) TM 1
    study_time: Mapped[str] = mapped_column(String(16), default="")
    # StudyDate + StudyTime as YYYYMMDDHHMMSS.FFFFFF, for combined date-time range matching.
    study_datetime: Mapped[str] = mapped_column(String(21), default="", index=True)
    # (0008,0050) SH 1
    accession_number: Mapped[str] = mapped_column(String(16), default="", index=True)
    # (0020,0010) SH 1
    study_id: Mapped[str] = mapped_column(String(16), default="")
    # (0008,1030) LO 1
    study_description: Mapped[str] = mapped_column(String(64), default="")
    # (0008,0090) PN 1
    referring_physician_name: Mapped[str] = mapped_column(String(400), default="")
    referring_physician_name_folded: Mapped[str] = mapped_column(String(400), default="")
    referring_physician_name_words: Mapped[str] = mapped_column(String(500), default="")
    referring_physician_name_phonetic: Mapped[str] = mapped_column(String(500), default="")
    # (0008,0201) SH 1
    timezone_offset_from_utc: Mapped[str] = mapped_column(String(16), default="")
    # (0008,0005) CS 1-n
    specific_character_set: Mapped[str] = mapped_column(String(128), default="")
    # The access group the study belongs to (storage.access): set when the study is first
    # stored, from the attribute the access rules name; "" when none is configured.
    access_group: Mapped[str] = mapped_column(String(64), default="", index=True)
    # (0020,1206) IS 1 and (0020,1208) IS 1: its series and stored instances, kept by the
    # index writer (storage.index.counts) so that a search never counts.
    number_of_series: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    number_of_instances: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the study's instances were last read (storage.tiers: idle rules), recorded at
    # most once an hour per study and process; None when never read.
    last_accessed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Series(Base):
    __tablename__ = "series"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("study.pk"), index=True)
    # (0020,000E) UI 1
    series_instance_uid: Mapped[str] = mapped_column(String(128), unique=True)
    # (0008,0060) CS 1
    modality: Mapped[str] = mapped_column(String(16), default="")
    # (0020,0011) IS 1
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # (0008,103E) LO 1
    series_description: Mapped[str] = mapped_column(String(64), default="")
    # (0040,0244) DA 1
    performed_procedure_step_start_date: Mapped[str] = mapped_column(String(8), default="")
    # (0040,0245) TM 1
    performed_procedure_step_start_time: Mapped[str] = mapped_column(String(16), default="")
    performed_procedure_step_start_datetime: Mapped[str] = mapped_column(String(21), default="")
    # (0020,1209) IS 1: its stored instances, kept by the index writer.
    number_of_instances: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    # Modality and ModalitiesInStudy: the series (and studies) of a modality, from the index.
    __table_args__ = (Index("ix_series_modality_study", "modality", "study_pk"),)


class RequestAttributes(Base):
    """One item of a series' Request Attributes Sequence (0040,0275), for sequence matching."""

    __tablename__ = "request_attributes"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_pk: Mapped[int] = mapped_column(ForeignKey("series.pk", ondelete="CASCADE"), index=True)
    # (0040,1001) SH 1, in (0040,0275)
    requested_procedure_id: Mapped[str] = mapped_column(String(16), default="", index=True)
    # (0040,0009) SH 1, in (0040,0275)
    scheduled_procedure_step_id: Mapped[str] = mapped_column(String(16), default="", index=True)
    # (0008,0050) SH 1, in (0040,0275)
    accession_number: Mapped[str] = mapped_column(String(16), default="")


class Instance(Base):
    """One SOP instance. Visible to queries and retrieves only when ``status`` is stored.

    An ingest claims the row first (``pending_key`` set, and ``status`` pending for a new
    instance), writes the blob, then in one transaction stores metadata and frames, moves
    ``pending_key`` to ``blob_key`` and sets ``status`` to stored.
    """

    __tablename__ = "instance"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    # (0008,0018) UI 1
    sop_instance_uid: Mapped[str] = mapped_column(String(128), unique=True)
    series_pk: Mapped[int | None] = mapped_column(ForeignKey("series.pk"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING)
    # (0008,0016) UI 1
    sop_class_uid: Mapped[str] = mapped_column(String(128), default="")
    # (0020,0013) IS 1
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # (0028,0010) US 1
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # (0028,0011) US 1
    columns: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # (0028,0008) IS 1
    number_of_frames: Mapped[int] = mapped_column(Integer, default=0)
    # (0002,0010) UI 1
    transfer_syntax_uid: Mapped[str] = mapped_column(String(128), default="")
    # (0028,0100) US 1
    bits_allocated: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # (0040,0512) LO 1
    container_identifier: Mapped[str] = mapped_column(String(64), default="", index=True)
    # (0008,002A) DT 1
    acquisition_datetime: Mapped[str] = mapped_column(String(32), default="")
    acquisition_datetime_norm: Mapped[str] = mapped_column(String(21), default="", index=True)
    # The WG-26 specimen facts a whole-slide image lacks ("anatomy,preparation"; "" when it
    # has them, or is no WSI): found by QIDO-RS missingspecimenfacts=true (columns.py).
    missing_specimen_facts: Mapped[str] = mapped_column(String(64), default="", index=True)
    blob_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    # SHA-256 of the blob as stored (hex), recorded at ingest; None for instances stored
    # before hashes were recorded.
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pending_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    stored_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # The storage tier the blob is in (storage.tiers), the one its key names; "" is the
    # first tier. Kept beside the key, written with it, for the tier reports and rules.
    tier: Mapped[str] = mapped_column(String(32), default="", index=True)
    # When a read (or `tiers recall`) asked for the blob to be recalled from a tier that
    # needs a recall; cleared when the recall has moved it back to the first tier.
    recall_requested_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # The calling AE title of the C-STORE that stored it ("" for the other front doors): the
    # source_ae condition of forward_rules.
    stored_by: Mapped[str] = mapped_column(String(64), default="")

    __table_args__ = (
        Index("ix_instance_series_status", "series_pk", "status"),
        Index("ix_instance_sop_class", "sop_class_uid"),
    )


class Specimen(Base):
    """A specimen an instance shows: one item of its Specimen Description Sequence."""

    __tablename__ = "specimen"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_pk: Mapped[int] = mapped_column(
        ForeignKey("instance.pk", ondelete="CASCADE"), index=True
    )
    # (0040,0551) LO 1, in (0040,0560)
    specimen_identifier: Mapped[str] = mapped_column(String(64), default="", index=True)
    # (0040,0554) UI 1, in (0040,0560)
    specimen_uid: Mapped[str] = mapped_column(String(128), default="")


class InstanceMetadata(Base):
    """The DICOM JSON document of an instance (zlib), bulk data as BulkDataURIs."""

    __tablename__ = "instance_metadata"

    instance_pk: Mapped[int] = mapped_column(
        ForeignKey("instance.pk", ondelete="CASCADE"), primary_key=True
    )
    document: Mapped[bytes] = mapped_column(LargeBinary)


class FrameIndex(Base):
    """The frame table of an instance: byte ranges of every frame in its blob."""

    __tablename__ = "frame_index"

    instance_pk: Mapped[int] = mapped_column(
        ForeignKey("instance.pk", ondelete="CASCADE"), primary_key=True
    )
    ranges: Mapped[bytes] = mapped_column(LargeBinary)


class ApiToken(Base):
    """A token for a machine or a share link: stored as a hash, never as the secret."""

    __tablename__ = "api_token"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The public part of the token (shown by `token list`); the secret follows it.
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200), default="")
    scopes: Mapped[str] = mapped_column(String(100), default="")  # space-separated
    # Space-separated access groups, or "*" for every group.
    groups: Mapped[str] = mapped_column(String(1000), default="*")
    # A share link: the one study it opens (read only); None for machine tokens.
    study_instance_uid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_by: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class AuditEvent(Base):
    """One access to patient data: who, when, from where, what, which operation, outcome."""

    __tablename__ = "audit_event"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)  # UTC
    actor: Mapped[str] = mapped_column(String(256), default="", index=True)
    actor_kind: Mapped[str] = mapped_column(String(16), default="")
    source: Mapped[str] = mapped_column(String(256), default="")  # address or AE@host
    operation: Mapped[str] = mapped_column(String(32), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(128), default="", index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(128), default="")
    sop_instance_uid: Mapped[str] = mapped_column(String(128), default="")
    outcome: Mapped[int] = mapped_column(Integer, default=0)  # HTTP status or DIMSE status
    success: Mapped[bool] = mapped_column(Boolean, default=True)
    detail: Mapped[str] = mapped_column(String(2000), default="")  # e.g. the query
    # (0010,0020) LO 1 and (0010,0010) PN 1 of the study's patient
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(400), default="")
    # Set when the event has been sent as a DICOM Audit Message (syslog export).
    exported_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)


class ChangeEvent(Base):
    """One committed change of an instance, in the order of the commits (the change feed,
    after Azure's DICOM service): written in the transaction that made the change."""

    __tablename__ = "change_event"

    # Assigned under the lock of the change_counter row, so in commit order, without gaps.
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)  # UTC, never decreasing
    action: Mapped[str] = mapped_column(String(8))  # storage.records.Action
    state: Mapped[str] = mapped_column(String(8))  # storage.records.State, kept current
    study_instance_uid: Mapped[str] = mapped_column(String(128))
    series_instance_uid: Mapped[str] = mapped_column(String(128))
    sop_instance_uid: Mapped[str] = mapped_column(String(128), index=True)
    # The study's access group when the change was made (the feed obeys the access rules
    # even for studies deleted since).
    access_group: Mapped[str] = mapped_column(String(64), default="")


class ChangeCounter(Base):
    """The one row that hands out change sequences: locked by each committing writer."""

    __tablename__ = "change_counter"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, default=0)  # the last one handed out
    at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # of that one


class ChangeCursor(Base):
    """How far one consumer of the change feed (a webhook URL) has got, and which process
    holds the lease to deliver to it."""

    __tablename__ = "change_cursor"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(1000), unique=True)
    sequence: Mapped[int] = mapped_column(BigInteger, default=0)  # delivered up to here
    holder: Mapped[str] = mapped_column(String(200), default="")
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ConversionJob(Base):
    """A slide submitted for conversion (storage.jobs); *run* names the worker's current run."""

    __tablename__ = "conversion_job"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32), unique=True)
    source: Mapped[str] = mapped_column(String(4000))
    metadata_json: Mapped[str] = mapped_column(String(20000), default="")
    uploaded: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    run: Mapped[str] = mapped_column(String(32), default="")
    worker: Mapped[str] = mapped_column(String(256), default="")
    frames_done: Mapped[int] = mapped_column(Integer, default=0)
    frames_total: Mapped[int] = mapped_column(Integer, default=0)
    study_instance_uid: Mapped[str] = mapped_column(String(128), default="")
    instance_uids: Mapped[str] = mapped_column(String(100000), default="")  # space-separated
    reason: Mapped[str] = mapped_column(String(2000), default="")
    submitted_by: Mapped[str] = mapped_column(String(256), default="")
    submitted_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


__all__ = [
    "ApiToken",
    "AuditEvent",
    "Base",
    "ChangeCounter",
    "ChangeCursor",
    "ChangeEvent",
    "ConversionJob",
    "FrameIndex",
    "Instance",
    "InstanceMetadata",
    "Patient",
    "RequestAttributes",
    "Series",
    "Specimen",
    "Status",
    "Study",
]


class DeidProject(Base):
    """A de-identified export project (`wsiarchive export --project`): the secret key its
    pseudonyms and new UIDs are derived from, so that exports into one project agree."""

    __tablename__ = "deid_project"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    secret: Mapped[str] = mapped_column(String(128))  # hex; read by administrators only
    created_by: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)


class PseudonymRow(Base):
    """One original value of an export project and the pseudonym that replaced it (the
    reversible map of PS3.15 E.1: kept inside the archive, never exported)."""

    __tablename__ = "pseudonym"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("deid_project.pk"), index=True)
    # PatientID, PatientName, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID
    kind: Mapped[str] = mapped_column(String(32))
    original: Mapped[str] = mapped_column(String(400), index=True)
    pseudonym: Mapped[str] = mapped_column(String(400), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        Index("ux_pseudonym_original", "project_pk", "kind", "original", unique=True),
    )


class ForwardItem(Base):
    """One instance to send to one forwarding destination (the outbox of wsiarchive's
    forwarder): pending until sent, or failed for good after its last attempt."""

    __tablename__ = "forward_outbox"
    __table_args__ = (
        Index("ix_forward_outbox_destination_state", "destination", "state", "pk"),
        Index("uq_forward_outbox_item", "destination", "sop_instance_uid", unique=True),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    destination: Mapped[str] = mapped_column(String(64))
    study_instance_uid: Mapped[str] = mapped_column(String(128))
    series_instance_uid: Mapped[str] = mapped_column(String(128))
    sop_instance_uid: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(8))  # storage.records.ForwardState
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(String(1000), default="")  # of the last failure
    queued_at: Mapped[datetime] = mapped_column(DateTime)
    retry_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
