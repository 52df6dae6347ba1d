"""The index schema: migrations make exactly the models, backfill search values, and the bulk
loader indexes like the two-phase ingest."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from storage.index.engine import migrate
from storage.index.models import Base
from tests.inprocess import TESTER


def test_migrations_create_exactly_the_models(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    migrate(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_migration_0002_backfills_search_values_from_documents(tmp_path: Path) -> None:
    """An index made before the search columns existed gets them filled from its documents."""
    from alembic import command
    from sqlalchemy import text

    from storage.dicom.document import build_document
    from storage.index.engine import _config
    from tests import corpus

    dataset = next(d for d in corpus.instances() if d.PatientID == "P1" and d.Modality == "SM")
    dataset.RequestAttributesSequence = corpus.instances()[-3].get("RequestAttributesSequence")
    engine = create_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    with engine.begin() as connection:
        command.upgrade(_config(connection), "0001")
        document = build_document(
            dataset,
            dataset.StudyInstanceUID,
            dataset.SeriesInstanceUID,
            dataset.SOPInstanceUID,
            None,
        )
        connection.execute(
            text("INSERT INTO patient VALUES (1, 'P1', '', :name, '19700101', 'M')"),
            {"name": str(dataset.PatientName)},
        )
        connection.execute(
            text(
                "INSERT INTO study VALUES (1, 1, :uid, '20201231', '233000', 'ACC1', 'S-A', '', "
                "'', '', 'ISO_IR 100')"
            ),
            {"uid": dataset.StudyInstanceUID},
        )
        connection.execute(
            text("INSERT INTO series VALUES (1, 1, :uid, 'SM', 1, '', '20201231', '233000')"),
            {"uid": dataset.SeriesInstanceUID},
        )
        connection.execute(
            text(
                "INSERT INTO instance (pk, sop_instance_uid, series_pk, status, sop_class_uid, "
                "number_of_frames, transfer_syntax_uid, size, blob_key) VALUES "
                "(1, :uid, 1, 'stored', :cls, 1, '1.2.840.10008.1.2.1', 10, 'k')"
            ),
            {"uid": dataset.SOPInstanceUID, "cls": dataset.SOPClassUID},
        )
        connection.execute(
            text("INSERT INTO instance_metadata VALUES (1, :doc)"), {"doc": document}
        )
    migrate(engine)
    with engine.connect() as connection:
        folded, words, phonetic = connection.execute(
            text(
                "SELECT patient_name_folded, patient_name_words, patient_name_phonetic FROM patient"
            )
        ).one()
        # Folded without accents since 0005, which also adds the Soundex codes.
        assert (folded, words, phonetic) == ("muller^jurgen", " muller jurgen ", " M460 J625 ")
        assert connection.scalar(text("SELECT study_datetime FROM study")) == (
            "20201231233000.000000"
        )
        assert connection.scalar(text("SELECT container_identifier FROM instance")) == "SLIDE-A1"
        # 0009 marks a slide stored before it that lacks the WG-26 specimen facts (the
        # corpus's specimen has neither anatomy nor preparation steps).
        assert connection.scalar(text("SELECT missing_specimen_facts FROM instance")) == (
            "anatomy,preparation"
        )
        # 0005 counts what is stored.
        assert connection.execute(
            text("SELECT number_of_series, number_of_instances FROM study")
        ).one() == (1, 1)
        assert connection.scalar(text("SELECT number_of_instances FROM series")) == 1
        assert connection.scalar(text("SELECT specimen_identifier FROM specimen")) == "SPEC-A"
        assert (
            connection.scalar(text("SELECT scheduled_procedure_step_id FROM request_attributes"))
            == "SPS1"
        )


def test_bulk_load_indexes_like_the_ingest_path(tmp_path: Path) -> None:
    """IndexWriter.load (the bulk loader) and the two-phase commit give the same search rows."""
    from storage.dicom.dataset import Identity
    from storage.dicom.document import build_document
    from storage.dicom.levels import Level
    from storage.index.writes import Entry, IndexWriter
    from storage.query.keys import attribute_for, parse_key
    from storage.query.results import run
    from storage.query.search import Search
    from tests import corpus

    datasets = corpus.instances()
    results = []
    for name, bulk in (("bulk", True), ("one-by-one", False)):
        engine = create_engine(f"sqlite:///{tmp_path / name}.sqlite3")
        migrate(engine)
        index = IndexWriter(engine)
        entries = []
        for ds in datasets:
            identity = Identity.of(ds)
            document = build_document(ds, identity.study, identity.series, identity.instance, None)
            entries.append(Entry(identity, ds, "1.2.840.10008.1.2.1", 1, 10, document, None, "k"))
        if bulk:
            index.load(entries)
        else:
            for entry in entries:
                claim = index.claim(entry.identity.instance, entry.key, False)
                index.commit(claim, entry)
        found = {}
        for key, value in (
            ("PatientName", "müller*"),
            ("SpecimenIdentifier", "SPEC-A"),
            ("RequestAttributesSequence.ScheduledProcedureStepID", "SPS1"),
        ):
            search = Search(Level.INSTANCE, levels={Level.STUDY, Level.SERIES, Level.INSTANCE})
            path = parse_key(key)
            attribute = attribute_for(path) if path else None
            assert attribute is not None
            page = run(engine, search.where(attribute, value), who=TESTER)
            found[key] = sorted(r.dataset["00080018"]["Value"][0] for r in page.results)
        results.append(found)
    assert results[0] == results[1]
    assert len(results[0]["PatientName"]) == 8
    assert len(results[0]["SpecimenIdentifier"]) == 4
