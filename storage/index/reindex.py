"""Recomputing the index's search values from the stored DICOM JSON documents (migrations)."""

from __future__ import annotations

import warnings
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Connection, delete, inspect, select, update
from sqlalchemy.orm import Session

from storage.dicom.document import load
from storage.dicom.levels import Level
from storage.index import columns
from storage.index.ladder import ladder
from storage.index.models import (
    Instance,
    InstanceMetadata,
    Patient,
    RequestAttributes,
    Series,
    Specimen,
    Study,
)
from storage.index.writes import add_request_attributes


def dataset_of(document: bytes) -> Dataset:
    """A stored document as a pydicom Dataset; bulk data is left out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Dataset.from_json(load(document), bulk_data_uri_handler=lambda *_: b"")


def _present(connection: Connection) -> Any:
    """A filter of column values to the columns the schema has now: a migration runs this
    module as it is today on the schema of its own revision."""
    known = {t: {c["name"] for c in inspect(connection).get_columns(t)} for t in _TABLES}

    def only(table: str, values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if k in known[table]}

    return only


_TABLES = ("instance", "series", "study", "patient")


def refresh_all(connection: Connection) -> int:
    """Refill every derived column and search table from the documents; returns a count."""
    only = _present(connection)
    session = Session(bind=connection)
    selected = select(
        Instance.pk,
        Instance.series_pk,
        Series.study_pk,
        Study.patient_pk,
        InstanceMetadata.document,
    )
    rows = session.execute(
        ladder(selected, Level.INSTANCE, [Level.STUDY])
        .join(InstanceMetadata, InstanceMetadata.instance_pk == Instance.pk)
        .order_by(Instance.pk)
    ).all()
    session.execute(delete(RequestAttributes))
    session.execute(delete(Specimen))
    seen_series: set[int] = set()
    seen_studies: set[int] = set()
    for instance_pk, series_pk, study_pk, patient_pk, document in rows:
        if series_pk is None:  # a claim of a new instance (never joined; for the types)
            continue
        dataset = dataset_of(document)
        session.execute(
            update(Instance)
            .where(Instance.pk == instance_pk)
            .values(**only("instance", columns.instance_values(dataset)))
        )
        for item in columns.specimens(dataset):
            session.add(Specimen(instance_pk=instance_pk, **item))
        add_request_attributes(session, series_pk, dataset)
        if series_pk not in seen_series:
            seen_series.add(series_pk)
            session.execute(
                update(Series)
                .where(Series.pk == series_pk)
                .values(**only("series", columns.series_values(dataset)))
            )
        if study_pk not in seen_studies:
            seen_studies.add(study_pk)
            session.execute(
                update(Study)
                .where(Study.pk == study_pk)
                .values(**only("study", columns.study_values(dataset)))
            )
            session.execute(
                update(Patient)
                .where(Patient.pk == patient_pk)
                .values(**only("patient", columns.patient_values(dataset)))
            )
        session.flush()
    return len(rows)


def refresh_specimen_facts(connection: Connection) -> int:
    """Recompute the missing specimen facts of every stored whole-slide image; returns how
    many were read."""
    rows = connection.execute(
        select(Instance.pk, InstanceMetadata.document)
        .join(InstanceMetadata, InstanceMetadata.instance_pk == Instance.pk)
        .where(Instance.sop_class_uid == columns.WSI_STORAGE)
        .order_by(Instance.pk)
    ).all()
    for instance_pk, document in rows:
        missing = columns.missing_specimen_facts(dataset_of(document))
        connection.execute(
            update(Instance)
            .where(Instance.pk == instance_pk)
            .values(missing_specimen_facts=missing)
        )
    return len(rows)
