"""The study and series counters equal COUNT(*) of what they count, after concurrent ingest,
overwrite (into another series) and delete; and searches return them. The same scenario
runs on PostgreSQL in tests/system/test_postgresql.py."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import Engine, text

from storage.dicom.dataset import Identity
from storage.dicom.document import build_document
from storage.dicom.levels import Level
from storage.errors import InstanceBusy
from storage.index.engine import create_index_engine, migrate
from storage.index.writes import Entry, IndexWriter
from storage.query.keys import by_keyword
from storage.query.results import run
from storage.query.search import Search
from tests.inprocess import TESTER

SM = "1.2.840.10008.5.1.4.1.1.77.1.6"
# Each counter, and the COUNT(*) it stands for.
COUNTERS = {
    "series.number_of_instances": (
        "SELECT pk, number_of_instances FROM series",
        "SELECT series.pk, count(instance.pk) FROM series LEFT JOIN instance ON "
        "instance.series_pk = series.pk AND instance.status = 'stored' GROUP BY series.pk",
    ),
    "study.number_of_series": (
        "SELECT pk, number_of_series FROM study",
        "SELECT study.pk, count(series.pk) FROM study LEFT JOIN series ON "
        "series.study_pk = study.pk GROUP BY study.pk",
    ),
    "study.number_of_instances": (
        "SELECT pk, number_of_instances FROM study",
        "SELECT study.pk, count(instance.pk) FROM study LEFT JOIN series ON series.study_pk "
        "= study.pk LEFT JOIN instance ON instance.series_pk = series.pk AND "
        "instance.status = 'stored' GROUP BY study.pk",
    ),
}


def dataset(study: str, series: str, modality: str = "SM") -> Dataset:
    ds = Dataset()
    ds.PatientID, ds.PatientName = "COUNT1", "Zählt^Anna"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID, ds.SOPClassUID, ds.Modality = generate_uid(), SM, modality
    return ds


def entry(ds: Dataset) -> Entry:
    identity = Identity.of(ds)
    document = build_document(ds, identity.study, identity.series, identity.instance, None)
    return Entry(identity, ds, "1.2.840.10008.1.2.1", 1, 10, document, None, "k")


def store(index: IndexWriter, ds: Dataset, overwrite: bool = False) -> None:
    """The two phases of an ingest, as storage.ingest runs them (no blob: the index only);
    refused while another thread stores the same instance, so tried again."""
    for _ in range(200):
        try:
            claim = index.claim(ds.SOPInstanceUID, f"blob/{generate_uid()}", overwrite)
        except InstanceBusy:
            threading.Event().wait(0.01)
            continue
        index.commit(claim, entry(ds))
        return
    raise AssertionError(f"{ds.SOPInstanceUID} stayed busy")


def together(work: list[Callable[[], None]], threads: int = 8) -> None:
    """Run *work* on *threads* threads at once; any failure fails the test."""
    failures: list[BaseException] = []
    pending = list(work)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                job = pending.pop()
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 (reported below)
                failures.append(exc)

    running = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    assert not failures, failures


def assert_counters_are_counts(engine: Engine) -> None:
    with engine.connect() as connection:
        for name, (kept, counted) in COUNTERS.items():
            assert dict(connection.execute(text(kept)).all()) == dict(
                connection.execute(text(counted)).all()
            ), name


def scenario(engine: Engine) -> None:
    """Three studies of two series of six instances stored by 8 threads at once; then, at
    once: a third of the instances overwritten into a new series of another study, a second
    series of a study emptied by delete, the same instance stored again; the counters are
    checked after each step, and searches return them."""
    index = IndexWriter(engine)
    studies = [generate_uid() for _ in range(3)]
    series = {s: [generate_uid(), generate_uid()] for s in studies}
    stored = [
        dataset(s, se, "SM" if i % 2 else "ANN")
        for s in studies
        for i, se in enumerate(series[s])
        for _ in range(6)
    ]
    together([lambda ds=ds: store(index, ds) for ds in stored])
    assert_counters_are_counts(engine)

    moved_to = generate_uid()
    moved = [ds for ds in stored if ds.SeriesInstanceUID == series[studies[0]][0]][:3]
    emptied = [ds for ds in stored if ds.SeriesInstanceUID == series[studies[1]][1]]
    again = stored[-1]
    work: list[Callable[[], None]] = []
    for ds in moved:
        copy = Dataset(ds)
        copy.StudyInstanceUID, copy.SeriesInstanceUID = studies[2], moved_to
        work.append(lambda c=copy: store(index, c, overwrite=True))
    work += [lambda ds=ds: index.delete(ds.SOPInstanceUID) for ds in emptied]  # type: ignore[misc]
    work += [lambda: store(index, again, overwrite=True)] * 3
    together(work)
    assert_counters_are_counts(engine)

    with engine.connect() as connection:
        assert (
            connection.scalar(
                text("SELECT number_of_series FROM study WHERE study_instance_uid = :s"),
                {"s": studies[1]},
            )
            == 1
        )  # its second series went with its last instance
    found = {}
    for uid in studies:
        search = Search(Level.STUDY, levels={Level.STUDY}, limit=10)
        search.where(by_keyword("StudyInstanceUID"), uid)
        search.include += [
            by_keyword("NumberOfStudyRelatedSeries"),
            by_keyword("NumberOfStudyRelatedInstances"),
        ]
        (match,) = run(engine, search, TESTER).results
        found[uid] = (match.dataset["00201206"]["Value"][0], match.dataset["00201208"]["Value"][0])
    assert found == {studies[0]: (2, 9), studies[1]: (1, 6), studies[2]: (3, 15)}

    # Everything removed: every row goes, no counter is left behind.
    together([lambda ds=ds: index.delete(ds.SOPInstanceUID) for ds in stored])
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM study")) == 0
        assert connection.scalar(text("SELECT count(*) FROM series")) == 0


def test_counters_equal_counts_after_concurrent_ingest_overwrite_and_delete(
    tmp_path: Path,
) -> None:
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    migrate(engine)
    scenario(engine)
    engine.dispose()


def test_bulk_load_keeps_the_counters(tmp_path: Path) -> None:
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    migrate(engine)
    study = generate_uid()
    first, second = generate_uid(), generate_uid()
    IndexWriter(engine).load([entry(dataset(study, s)) for s in (first, first, second)])
    assert_counters_are_counts(engine)
    with engine.connect() as connection:
        assert connection.execute(
            text("SELECT number_of_series, number_of_instances FROM study")
        ).one() == (2, 3)
    engine.dispose()
