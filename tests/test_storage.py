"""Storage-core units checked against independent readers: UIDs, frame tables, migrations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from storage.dicom.frames import FrameTable
from storage.dicom.part10 import read_part10
from storage.dicom.uids import is_conformant_uid, is_valid_uid, validate_uid
from storage.index.engine import migrate
from storage.index.models import Base
from tests.conftest import data_id, dicom_files
from tests.dicomfiles import frames


def test_uid_grammar() -> None:
    assert is_conformant_uid("1.2.840.10008.5.1.4.1.1.77.1.6")
    assert is_conformant_uid("0")
    assert not is_conformant_uid("1.02.3")  # leading zero
    assert not is_conformant_uid("1." + "2" * 63)  # 65 characters
    assert is_valid_uid("1." + "2" * 64)  # accepted: a real file in the corpus has one
    for bad in ("", "1..2", ".1", "1.", "1.2.a", "1.2/3", "../1", "1.2 ", "1" * 129, None, 12):
        assert not is_valid_uid(bad), bad
    with pytest.raises(Exception, match="not a valid UID"):
        validate_uid("1.2.x", "Study Instance UID")


@pytest.mark.parametrize("path", dicom_files(), ids=data_id)
def test_frame_table_matches_pydicom(path: Path) -> None:
    parsed = read_part10(path)
    expected = frames(path)
    assert parsed.frames is not None
    table = FrameTable.from_bytes(parsed.frames.to_bytes())
    assert len(table) == len(expected)
    fd = os.open(path, os.O_RDONLY)
    try:
        for index, frame in enumerate(expected):
            data = b"".join(os.pread(fd, length, offset) for offset, length in table.ranges(index))
            assert data == frame
    finally:
        os.close(fd)


def test_multi_fragment_frames_without_offset_table(tmp_path: Path) -> None:
    """Frames split over several fragments, no Basic Offset Table: grouped by start markers."""
    from pydicom.encaps import encapsulate

    from storage.dicom.frames import encapsulated_frames, scan_fragments

    frame_a = b"\xff\xd8" + b"a" * 100 + b"\xff\xd9"
    frame_b = b"\xff\xd8" + b"b" * 60 + b"\xff\xd9"
    encoded = encapsulate([frame_a, frame_b], fragments_per_frame=3, has_bot=False)
    encoded += b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # Sequence Delimitation Item
    path = tmp_path / "pixels.bin"
    path.write_bytes(encoded)
    fd = os.open(path, os.O_RDONLY)
    try:
        table = encapsulated_frames(scan_fragments(fd, 0, len(encoded)), 2)
        got = [b"".join(os.pread(fd, n, o) for o, n in table.ranges(i)) for i in range(2)]
    finally:
        os.close(fd)
    assert got == [frame_a, frame_b]
    assert len(table.ranges(0)) == 3


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
        folded, words = connection.execute(
            text("SELECT patient_name_folded, patient_name_words FROM patient")
        ).one()
        assert (folded, words) == ("müller^jürgen", " muller jurgen ")
        assert connection.scalar(text("SELECT study_datetime FROM study")) == (
            "20201231233000.000000"
        )
        assert connection.scalar(text("SELECT container_identifier FROM instance")) == "SLIDE-A1"
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
            page = run(engine, search.where(attribute, value))
            found[key] = sorted(r.dataset["00080018"]["Value"][0] for r in page.results)
        results.append(found)
    assert results[0] == results[1]
    assert len(results[0]["PatientName"]) == 8
    assert len(results[0]["SpecimenIdentifier"]) == 4


def test_transcoded_frame_cache_is_bounded_in_bytes() -> None:
    from storage.imaging.codecs import Encoded
    from storage.retrieve.transcoder import Transcoder

    cache = Transcoder(cache_bytes=1000).cache
    for number in range(1, 6):
        cache.put(("blob", number, "ts"), Encoded(bytes(300), "RGB"))
    assert cache.bytes <= 1000
    assert cache.get(("blob", 1, "ts")) is None  # the least recently used went first
    assert cache.get(("blob", 5, "ts")) is not None
    cache.put(("blob", 9, "ts"), Encoded(bytes(5000), "RGB"))  # larger than the whole cache
    assert cache.get(("blob", 9, "ts")) is None and cache.bytes <= 1000
