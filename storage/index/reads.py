"""Reading the study index: the stored records of a study, series or instance, their
documents and frame tables, and the lookups the front doors need."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import Engine, select

from storage.access import Principal
from storage.dicom.levels import Level
from storage.errors import NotFound
from storage.index.ladder import AnySelect, ladder
from storage.index.models import (
    FrameIndex,
    Instance,
    InstanceMetadata,
    Patient,
    Series,
    Study,
)
from storage.records import StoredRecord

CHUNK = 500  # primary keys per IN (...) list


class IndexReader:
    """Every read of the index tables that is not a search (storage.query does those)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _stored(self, who: Principal | None) -> AnySelect:
        columns = select(
            Instance.pk,
            Study.study_instance_uid,
            Series.series_instance_uid,
            Instance.sop_instance_uid,
            Instance.sop_class_uid,
            Instance.transfer_syntax_uid,
            Instance.number_of_frames,
            Instance.blob_key,
            Instance.size,
            Instance.stored_at,
            Study.access_group,
        )
        return ladder(columns, Level.INSTANCE, [Level.STUDY], who)

    def records(
        self,
        study: str,
        series: str | None = None,
        instance: str | None = None,
        who: Principal | None = None,
    ) -> list[StoredRecord]:
        """Stored instances of a study, series or single instance, in a stable order (those
        *who* may see; a study it may not see is not found, as if it were not stored)."""
        query = self._stored(who).where(Study.study_instance_uid == study)
        if series is not None:
            query = query.where(Series.series_instance_uid == series)
        if instance is not None:
            query = query.where(Instance.sop_instance_uid == instance)
        query = query.order_by(
            Series.series_number, Series.pk, Instance.instance_number, Instance.pk
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        if not rows:
            raise NotFound(not_found(study, series, instance))
        return [StoredRecord(*row) for row in rows]

    def documents(self, records: list[StoredRecord]) -> Iterator[bytes]:
        """The stored metadata documents of *records*, in their order."""
        pks = [record.pk for record in records]
        for start in range(0, len(pks), CHUNK):
            chunk = pks[start : start + CHUNK]
            with self.engine.connect() as connection:
                found = {
                    pk: document
                    for pk, document in connection.execute(
                        select(InstanceMetadata.instance_pk, InstanceMetadata.document).where(
                            InstanceMetadata.instance_pk.in_(chunk)
                        )
                    )
                }
            for pk in chunk:
                if pk in found:
                    yield found[pk]

    def frame_ranges(self, pk: int) -> bytes | None:
        """The encoded frame table of instance *pk*."""
        with self.engine.connect() as connection:
            found: bytes | None = connection.scalar(
                select(FrameIndex.ranges).where(FrameIndex.instance_pk == pk)
            )
            return found

    def stored_classes(
        self, sop_instance_uids: Iterable[str], who: Principal | None = None
    ) -> dict[str, str]:
        """SOP Class UID by SOP Instance UID of those of *sop_instance_uids* that are stored
        (and that *who* may see)."""
        uids = list(sop_instance_uids)
        found: dict[str, str] = {}
        stored = ladder(
            select(Instance.sop_instance_uid, Instance.sop_class_uid), Level.INSTANCE, (), who
        )
        with self.engine.connect() as connection:
            for start in range(0, len(uids), CHUNK):
                query = stored.where(Instance.sop_instance_uid.in_(uids[start : start + CHUNK]))
                found.update({uid: sop_class for uid, sop_class in connection.execute(query)})
        return found

    def study_for_accession(
        self, accession_number: str, patient_id: str | None, who: Principal | None = None
    ) -> str | None:
        """The Study Instance UID stored first for an accession number (and patient)."""
        query = ladder(select(Study.study_instance_uid), Level.STUDY, [Level.PATIENT], who).where(
            Study.accession_number == accession_number
        )
        if patient_id:
            query = query.where(Patient.patient_id == patient_id)
        with self.engine.connect() as connection:
            found: str | None = connection.scalar(query.order_by(Study.pk).limit(1))
            return found


def not_found(study: str, series: str | None, instance: str | None) -> str:
    if instance is not None:
        return f"no stored instance {instance} in series {series} of study {study}"
    if series is not None:
        return f"no stored series {series} in study {study}"
    return f"no stored study {study}"
