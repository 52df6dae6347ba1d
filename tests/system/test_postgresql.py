"""The same archive on PostgreSQL: store, search, retrieve, refuse duplicates, concurrently."""

from __future__ import annotations

import threading

import requests
from dicomweb_client import DICOMwebClient

from tests.dicomfiles import frames, multipart_body, read


def test_archive_on_postgresql(fresh_server, postgres, testdata) -> None:
    # Every store at once (max_uploads: no admission limit for this test of concurrency).
    server = fresh_server(database_url=postgres.url, max_uploads="-1")
    folder = sorted((testdata / "dicom" / "jcupitt-cmu-1-small-region").glob("*.dcm"))
    bodies = [multipart_body([p.read_bytes()]) for p in folder]
    statuses: list[int] = []

    def store(body: bytes, content_type: str) -> None:
        response = requests.post(
            server.url + "/studies", data=body, headers={"Content-Type": content_type}
        )
        statuses.append(response.status_code)

    # Twelve instances of one new study and series, stored concurrently: the study and series
    # rows are created once whichever request gets there first.
    threads = [threading.Thread(target=store, args=pair) for pair in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * len(folder)

    client = DICOMwebClient(server.url)
    study = read(folder[0]).StudyInstanceUID
    studies = client.search_for_studies(search_filters={"StudyInstanceUID": study})
    assert len(studies) == 1
    assert studies[0]["00201208"]["Value"] == [len(folder)]
    for path in folder:
        dataset = read(path)
        got = client.retrieve_instance_frames(
            study, dataset.SeriesInstanceUID, dataset.SOPInstanceUID, [1]
        )
        assert bytes(got[0]) == frames(path)[0]
    response = requests.post(
        server.url + "/studies", data=bodies[0][0], headers={"Content-Type": bodies[0][1]}
    )
    assert response.status_code == 409


def test_index_gone_mid_service_is_503_then_recovers(fresh_server, testdata) -> None:
    """The index's server stopping while the archive serves: every request answers 503 with
    Retry-After within seconds (never a hang, never a 500), and service resumes by itself
    when the index is back."""
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from tests.servers import PostgresCluster

    # A cluster of its own (the session's is shared); outside pytest's root, as in conftest.
    directory = Path(tempfile.mkdtemp(prefix="wsiarchive-pg-"))
    cluster = PostgresCluster(directory).start()
    try:
        server = fresh_server(database_url=cluster.url)
        path = testdata / "dicom" / "wsi2dcm_jpeg.dcm"
        body, content_type = multipart_body([path.read_bytes()])
        stored = requests.post(
            server.url + "/studies", data=body, headers={"Content-Type": content_type}, timeout=60
        )
        assert stored.status_code == 200
        dataset = read(path)
        metadata = f"{server.url}/studies/{dataset.StudyInstanceUID}/metadata"
        cluster.stop()
        for url in (server.url + "/studies", metadata):
            started = time.monotonic()
            response = requests.get(url, timeout=30)
            assert response.status_code == 503, (url, response.text)
            assert response.headers["Retry-After"] == "10"
            assert "study index cannot be reached" in response.json()["error"]
            assert time.monotonic() - started < 15
        refused = requests.post(
            server.url + "/studies", data=body, headers={"Content-Type": content_type}, timeout=60
        )
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "10"
        cluster.resume()
        deadline = time.monotonic() + 30
        while requests.get(metadata, timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "service did not resume"
            time.sleep(0.5)
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


# -- many servers on one PostgreSQL (docs/operations.md) ------------------------------------------
def _serve(data_dir, url: str, **settings: str):  # type: ignore[no-untyped-def]
    """`wsiarchive serve` on *url*, not waited for (the caller decides what it expects)."""
    from tests.servers import ArchiveServer

    return ArchiveServer(data_dir, {"database_url": url, **settings})


def _wsiarchive(*args: str, **settings: str):  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    env = {**os.environ, **{f"WSIARCHIVE_{k.upper()}": v for k, v in settings.items()}}
    return subprocess.run(
        [sys.executable, "-m", "wsiarchive", *args], capture_output=True, text=True, env=env
    )


def test_counters_equal_counts_after_concurrent_writes_on_postgresql(postgres) -> None:
    """The counters' n = n + delta under PostgreSQL's row locks: eight writers at once."""
    from storage.index.engine import create_index_engine, migrate
    from tests.storage.index.test_counts import scenario

    engine = create_index_engine(postgres.database("counters"))
    migrate(engine)
    scenario(engine)
    engine.dispose()


def test_two_servers_starting_at_once_on_a_fresh_postgresql_both_come_up(
    postgres, tmp_path
) -> None:
    """Both migrate on start; the advisory lock makes the second wait and find the schema
    current (without it, both create the tables and one fails)."""
    from sqlalchemy import create_engine, text

    url = postgres.database("twostarts")
    servers = [_serve(tmp_path / f"data{n}", url, workers="1") for n in range(2)]
    errors: list[BaseException] = []

    def start(server) -> None:  # type: ignore[no-untyped-def]
        try:
            server.start()
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        for server in servers:
            assert requests.get(server.url + "/studies", timeout=10).status_code == 200
    finally:
        for server in servers:
            if server.process is not None:
                server.stop()
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    engine.dispose()


def test_migrate_brings_an_index_at_0003_to_head_and_keeps_its_data(
    postgres, tmp_path, testdata
) -> None:
    """An index at 0003 (stored into, then taken back to 0003): `serve` with
    migrate_on_start off refuses it (exit 3, naming `wsiarchive migrate`); `migrate --status`
    says behind; `migrate` upgrades it, backfilling counters and accent-free names; then
    serve starts and finds every instance."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from storage.index.engine import _config

    url = postgres.database("at0003")
    server = _serve(tmp_path / "data", url).start()
    folder = sorted((testdata / "dicom" / "jcupitt-cmu-1-small-region").glob("*.dcm"))
    body, content_type = multipart_body([p.read_bytes() for p in folder])
    assert (
        requests.post(
            server.url + "/studies", data=body, headers={"Content-Type": content_type}, timeout=120
        ).status_code
        == 200
    )
    server.stop()
    engine = create_engine(url)
    with engine.begin() as connection:
        command.downgrade(_config(connection), "0003")
        # A name as 0003 folded it (case only).
        connection.execute(
            text(
                "UPDATE patient SET patient_name = 'Müller^Jürgen', "
                "patient_name_folded = 'müller^jürgen'"
            )
        )
    with engine.connect() as connection:
        kept = connection.scalar(text("SELECT count(*) FROM instance"))
    assert kept == len(folder)

    refused = _wsiarchive(
        "serve",
        "--data-dir",
        str(tmp_path / "data"),
        "--web-only",
        "--port",
        "0",
        database_url=url,
        migrate_on_start="false",
    )
    assert refused.returncode == 3, refused.stderr
    assert "wsiarchive migrate" in refused.stderr and "0003" in refused.stderr
    status = _wsiarchive("migrate", "--status", database_url=url)
    assert status.returncode == 3 and "behind" in status.stdout
    upgraded = _wsiarchive("migrate", database_url=url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded from 0003" in upgraded.stdout
    assert _wsiarchive("migrate", "--status", database_url=url).returncode == 0

    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM instance")) == len(folder)
        assert connection.execute(
            text("SELECT number_of_series, number_of_instances FROM study")
        ).one() == (1, len(folder))
        assert connection.execute(
            text("SELECT patient_name_folded, patient_name_phonetic FROM patient")
        ).one() == ("muller^jurgen", " M460 J625 ")
    engine.dispose()
    again = _serve(tmp_path / "data", url, migrate_on_start="false").start()
    try:
        study = read(folder[0]).StudyInstanceUID
        found = DICOMwebClient(again.url).search_for_studies(
            search_filters={"StudyInstanceUID": study}
        )
        assert found[0]["00201208"]["Value"] == [len(folder)]
    finally:
        again.stop()


def test_trigram_indexes_fall_back_without_the_extension_and_come_with_it(postgres) -> None:
    """A role that may not create pg_trgm still migrates (a warning; searches scan); once a
    DBA has created the extension, the next `migrate` adds the indexes, and PostgreSQL
    answers a leading-wildcard name search from one."""
    from sqlalchemy import create_engine, text

    from storage.index import pgsearch

    url = postgres.database("plain", user="plain")
    postgres.execute("CREATE ROLE plain LOGIN")
    postgres.execute("GRANT CREATE, USAGE ON SCHEMA public TO plain", database="plain")
    first = _wsiarchive("migrate", database_url=url)
    assert first.returncode == 0, first.stderr
    assert "CREATE EXTENSION pg_trgm" in first.stderr  # the warning names the remedy
    engine = create_engine(url)
    query = text("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%_trgm'")
    with engine.connect() as connection:
        assert connection.scalars(query).all() == []
    postgres.execute("CREATE EXTENSION pg_trgm", database="plain")
    second = _wsiarchive("migrate", database_url=url)
    assert second.returncode == 0, second.stderr
    expected = {pgsearch.index_name(t, c) for t, c in pgsearch.TRIGRAM_COLUMNS}
    with engine.connect() as connection:
        assert set(connection.scalars(query)) == expected
        connection.exec_driver_sql("SET enable_seqscan = off")
        plan = "\n".join(
            connection.scalars(
                text("EXPLAIN SELECT pk FROM patient WHERE patient_name_folded LIKE '%ller%'")
            )
        )
    assert "ix_patient_patient_name_folded_trgm" in plan, plan
    engine.dispose()


def test_a_server_starting_leaves_the_claims_of_others_writing_alone(
    postgres, fresh_server
) -> None:
    """Start-up recovery on a shared index releases only claims older than STALE_CLAIM: a
    server joining the cluster must not undo another's write in progress."""
    from datetime import timedelta

    from sqlalchemy import text

    from storage.index.engine import create_index_engine, migrate
    from storage.index.writes import STALE_CLAIM, IndexWriter

    url = postgres.database("claims")
    engine = create_index_engine(url)
    migrate(engine)
    writing = IndexWriter(engine).claim("1.2.3.4.1", "blob/writing", overwrite=False)
    IndexWriter(engine).claim("1.2.3.4.2", "blob/dead", overwrite=False)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE instance SET claimed_at = claimed_at - :age WHERE pending_key = :k"),
            {"age": STALE_CLAIM + timedelta(minutes=1), "k": "blob/dead"},
        )
    fresh_server(database_url=url)
    with engine.connect() as connection:
        left = connection.scalars(text("SELECT pending_key FROM instance")).all()
    assert left == [writing.key]  # the dead writer's claim released, the live one's kept
    engine.dispose()
