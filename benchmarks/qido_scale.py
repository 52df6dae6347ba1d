"""QIDO-RS at ten million instances on PostgreSQL: the index loaded by SQL inside PostgreSQL
(INSERT ... SELECT generate_series, rows shaped as the ingest writes them), then the searches
a viewer makes timed through the real HTTP server, p50 and p99.

    .venv/bin/python benchmarks/qido_scale.py [--studies 1000000] [--series 2] [--instances 5]
                                              [--requests 200] [--workdir /work/pgscale-bench]

The study searches' goal: p50 <= 20 ms, p99 <= 60 ms. The data (about 1.5 GB per million
instances) is kept under --workdir, on /work's disk, and removed at the end (--keep keeps it
and --reuse searches a kept one again). EXPLAIN of each search is written beside the results.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.peers import Ours, _children, _cpu_seconds  # noqa: E402
from benchmarks.qido_search import (  # noqa: E402
    FAMILY,
    GIVEN,
    MODALITIES,
    SM,
    entries_for_study,
    study_template,
    time_queries,
)
from storage.dicom.values import fold, phonetic_column, words_column  # noqa: E402
from storage.index import pgsearch  # noqa: E402
from storage.index.columns import patient_values, study_values  # noqa: E402
from storage.index.engine import create_index_engine, migrate  # noqa: E402
from storage.index.writes import IndexWriter  # noqa: E402
from tests.servers import PostgresCluster  # noqa: E402

GOAL = {"p50_ms": 20.0, "p99_ms": 60.0}
UID = "1.2.826.0.1.3680043.8.498."  # then a level digit and a zero-padded number: 57 chars
CHUNK = 50_000  # studies per INSERT ... SELECT (one transaction each, progress between)
# The server's settings PostgreSQL gets for the run (a small dedicated database server).
SERVER_SETTINGS = {
    "shared_buffers": "2GB",
    "effective_cache_size": "6GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "512MB",
    "random_page_cost": "1.1",
    "max_wal_size": "8GB",
}
_SENTINEL = 987654321  # stands for the patient's number while name forms are computed


def _name_parts() -> dict[str, list[str]]:
    """Per k = patient % 80, the stored name forms around the patient's number (a family,
    a number, '^', a given name; qido_search.study_template), computed by the ingest's own
    functions so that SQL only pastes the number in."""
    parts: dict[str, list[str]] = {
        f"{form}_{end}": [] for form in ("name", "folded", "words") for end in ("pre", "suf")
    }
    parts["phonetic"] = []
    for k in range(80):
        name = f"{FAMILY[k % len(FAMILY)]}{_SENTINEL}^{GIVEN[k % len(GIVEN)]}"
        for form, value in (("name", name), ("folded", fold(name)), ("words", words_column(name))):
            before, after = value.split(str(_SENTINEL))
            parts[f"{form}_pre"].append(before)
            parts[f"{form}_suf"].append(after)
        parts["phonetic"].append(phonetic_column(name))
    return parts


def _uid(level: int, number: str) -> str:
    return f"'{UID}{level}.' || lpad(({number})::text, 30, '0')"


def _statements(series: int, instances: int) -> list[tuple[str, str]]:
    """(table, INSERT ... SELECT) for studies [:lo, :hi): patients (two studies each) with
    the first of their studies, then studies, series, instances and their rows."""
    name = (
        "(CAST(:{0}_pre AS text[]))[p % 80 + 1] || (p / 160)::text "
        "|| (CAST(:{0}_suf AS text[]))[p % 80 + 1]"
    )
    date = (
        "(2015 + s % 10)::text || lpad((1 + (s / 10) % 12)::text, 2, '0') "
        "|| lpad((1 + s % 28)::text, 2, '0')"
    )
    hhmm = "lpad(((s * 7) % 24)::text, 2, '0') || lpad(((s * 13) % 60)::text, 2, '0')"
    modalities = "ARRAY[" + ", ".join(f"'{m}'" for m in MODALITIES) + "]"
    se = f"(s * {series} + j)"  # series number from 0
    inst = f"({se} * {instances} + i)"
    frames = " + ".join(
        f"CASE WHEN i = {i} THEN {max(4 ** (instances - i) // 4, 1)} ELSE 0 END"
        for i in range(instances)
    )
    return [
        (
            "patient",
            "INSERT INTO patient (pk, patient_id, issuer_of_patient_id, patient_name, "
            "patient_name_folded, patient_name_words, patient_name_phonetic, "
            "patient_birth_date, patient_sex) "
            f"SELECT p + 1, 'PAT' || lpad(p::text, 7, '0'), '', {name.format('name')}, "
            f"{name.format('folded')}, {name.format('words')}, "
            "(CAST(:phonetic AS text[]))[p % 80 + 1], "
            "'19' || lpad((40 + p % 60)::text, 2, '0') || lpad((1 + p % 12)::text, 2, '0') "
            "|| lpad((1 + p % 28)::text, 2, '0'), (ARRAY['M', 'F'])[p % 2 + 1] "
            "FROM generate_series((:lo + 1) / 2, (:hi + 1) / 2 - 1) AS p",
        ),
        (
            "study",
            "INSERT INTO study (pk, patient_pk, study_instance_uid, study_date, study_time, "
            "study_datetime, accession_number, study_id, study_description, "
            "referring_physician_name, referring_physician_name_folded, "
            "referring_physician_name_words, referring_physician_name_phonetic, "
            "timezone_offset_from_utc, specific_character_set, access_group, "
            "number_of_series, number_of_instances) "
            f"SELECT s + 1, s / 2 + 1, {_uid(1, 's')}, {date}, {hhmm} || '00', "
            f"{date} || {hhmm} || '00.000000', 'ACC' || lpad(s::text, 7, '0'), 'S' || s, "
            "'Histopathology', 'Doe^Jane', 'doe^jane', ' doe jane ', ' D000 J500 ', '', "
            f"'ISO_IR 192', '', {series}, {series * instances} "
            "FROM generate_series(:lo, :hi - 1) AS s",
        ),
        (
            "series",
            "INSERT INTO series (pk, study_pk, series_instance_uid, modality, series_number, "
            "series_description, performed_procedure_step_start_date, "
            "performed_procedure_step_start_time, performed_procedure_step_start_datetime, "
            "number_of_instances) "
            f"SELECT {se} + 1, s + 1, {_uid(2, se)}, "
            f"({modalities})[(s + j + 1) % {len(MODALITIES)} + 1], j + 1, "
            f"'Slide ' || (j + 1), '', '', '', {instances} "
            f"FROM generate_series(:lo, :hi - 1) AS s, generate_series(0, {series - 1}) AS j",
        ),
        (
            "instance",
            "INSERT INTO instance (pk, sop_instance_uid, series_pk, status, sop_class_uid, "
            "instance_number, rows, columns, number_of_frames, transfer_syntax_uid, "
            "container_identifier, acquisition_datetime, acquisition_datetime_norm, blob_key, "
            "size, content_hash, stored_at) "
            f"SELECT {inst} + 1, {_uid(3, inst)}, {se} + 1, 'stored', '{SM}', i + 1, 512, 512, "
            f"{frames}, '1.2.840.10008.1.2.4.50', 'SLIDE-' || s || '-' || (j + 1), '', '', "
            f"'bench/' || {_uid(3, inst)} || '.dcm', 1048576, "
            f"md5({inst}::text) || md5(({inst} + 1)::text), now() "
            f"FROM generate_series(:lo, :hi - 1) AS s, generate_series(0, {series - 1}) AS j, "
            f"generate_series(0, {instances - 1}) AS i",
        ),
        (
            "specimen",
            "INSERT INTO specimen (instance_pk, specimen_identifier, specimen_uid) "
            f"SELECT {inst} + 1, 'SPEC-' || s || '-' || (j + 1), {_uid(4, inst)} "
            f"FROM generate_series(:lo, :hi - 1) AS s, generate_series(0, {series - 1}) AS j, "
            f"generate_series(0, {instances - 1}) AS i",
        ),
        (
            "instance_metadata",
            "INSERT INTO instance_metadata (instance_pk, document) "
            f"SELECT {inst} + 1, :document "
            f"FROM generate_series(:lo, :hi - 1) AS s, generate_series(0, {series - 1}) AS j, "
            f"generate_series(0, {instances - 1}) AS i",
        ),
    ]


def _document(args: argparse.Namespace) -> bytes:
    """A real instance document (the ingest's build_document of a bench slide level)."""
    shape = argparse.Namespace(series=1, instances=1)
    return entries_for_study(0, shape, random.Random(0))[0].document


def _check_shape(engine: object, args: argparse.Namespace) -> None:
    """The generated patient and study search columns equal what the ingest computes for the
    same study (study_template): the SQL pastes, the ingest's functions decide."""
    from sqlalchemy import Engine, text

    assert isinstance(engine, Engine)
    rng = random.Random(0)
    with engine.connect() as connection:
        for number in (0, 1, 161, 12345 % args.studies, args.studies - 1):
            dataset = study_template(number, rng)
            expected = {**patient_values(dataset), **study_values(dataset)}
            row = (
                connection.execute(
                    text(
                        "SELECT * FROM study JOIN patient ON patient.pk = study.patient_pk "
                        "WHERE study.pk = :pk"
                    ),
                    {"pk": number + 1},
                )
                .mappings()
                .one()
            )
            for column, value in expected.items():
                if column in ("study_time", "study_datetime"):  # random in the template
                    continue
                assert row[column] == value, (number, column, row[column], value)


def load(url: str, args: argparse.Namespace) -> dict:
    """Migrate, drop the trigram indexes, insert by SQL, recreate them (pgsearch.ensure:
    what `wsiarchive migrate` does), ANALYZE."""
    from sqlalchemy import text

    engine = create_index_engine(url)
    migrate(engine)
    with engine.begin() as connection:
        for table, column in pgsearch.TRIGRAM_COLUMNS:
            connection.execute(text(f"DROP INDEX IF EXISTS {pgsearch.index_name(table, column)}"))
    statements = _statements(args.series, args.instances)
    parameters = {**_name_parts(), "document": _document(args)}
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    for lo in range(0, args.studies, CHUNK):
        hi = min(lo + CHUNK, args.studies)
        with engine.begin() as connection:
            connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
            for table, sql in statements:
                begun = time.perf_counter()
                connection.execute(text(sql), {**parameters, "lo": lo, "hi": hi})
                seconds[table] = seconds.get(table, 0.0) + time.perf_counter() - begun
        done = hi * args.series * args.instances
        rate = done / (time.perf_counter() - started)
        print(f"  {hi} studies, {done} instances ({rate:.0f} instances/s)", flush=True)
    inserted = time.perf_counter() - started
    begun = time.perf_counter()
    with engine.begin() as connection:
        connection.exec_driver_sql("SET maintenance_work_mem = '512MB'")
        pgsearch.ensure(connection)
    seconds["trigram_indexes"] = time.perf_counter() - begun
    with engine.begin() as connection:  # the serial keys continue after the generated rows
        for table in ("patient", "study", "series", "instance", "specimen"):
            connection.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'pk'), "
                f"(SELECT coalesce(max(pk), 1) FROM {table}))"
            )
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    _check_shape(engine, args)
    # One study stored through the ingest's writer on top: the generated rows take writes.
    IndexWriter(engine).load(entries_for_study(args.studies, args, random.Random(1)))
    with engine.connect() as connection:
        size = connection.exec_driver_sql(
            "SELECT pg_database_size(current_database())"
        ).scalar_one()
    engine.dispose()
    total = args.studies * args.series * args.instances
    return {
        "instances": total,
        "studies": args.studies,
        "series": args.studies * args.series,
        "insert_seconds": inserted,
        "seconds_by_table": seconds,
        "instances_per_s": total / inserted,
        "database_gb": size / 1e9,
    }


def plan(root: str, args: argparse.Namespace) -> dict[str, list[tuple[str, dict]]]:
    """The searches a viewer's worklist and study browser make, random parameters."""
    rng = random.Random(11)
    n, studies, patients = args.requests, args.studies, (args.studies + 1) // 2
    session = requests.Session()
    sample = []
    for _ in range(20):
        offset = rng.randrange(max(studies - 50, 1))
        found = session.get(root + "/studies", params={"limit": "10", "offset": str(offset)})
        sample += [s["0020000D"]["Value"][0] for s in found.json()]
    series_of = {
        uid: [s["0020000E"]["Value"][0] for s in session.get(f"{root}/studies/{uid}/series").json()]
        for uid in sample[:50]
    }
    counts = "NumberOfStudyRelatedSeries,NumberOfStudyRelatedInstances,ModalitiesInStudy"

    def month() -> str:
        year, month_ = 2015 + rng.randrange(10), 1 + rng.randrange(12)
        return f"{year}{month_:02d}01-{year}{month_:02d}28"

    def week() -> str:  # the last days of the archive's dates: the newest studies
        day = 1 + rng.randrange(20)
        return f"202412{day:02d}-202412{day + 7:02d}"

    return {
        "by_patient_id": [
            ("/studies", {"PatientID": f"PAT{rng.randrange(patients):07d}"}) for _ in range(n)
        ],
        "by_patient_name_wildcard": [
            (
                "/studies",
                {
                    "PatientName": f"{rng.choice(FAMILY)}{rng.randrange(patients // 160 + 1)}*",
                    "limit": "25",
                },
            )
            for _ in range(n)
        ],
        "by_patient_name_fuzzy": [
            (
                "/studies",
                {
                    "PatientName": rng.choice(FAMILY).lower()[:5] + f"{rng.randrange(10)}",
                    "fuzzymatching": "true",
                    "limit": "25",
                },
            )
            for _ in range(n)
        ],
        "by_accession_number": [
            ("/studies", {"AccessionNumber": f"ACC{rng.randrange(studies):07d}"}) for _ in range(n)
        ],
        "by_study_date_range": [
            ("/studies", {"StudyDate": month(), "limit": "25"}) for _ in range(n)
        ],
        "by_modalities_in_study": [
            ("/studies", {"ModalitiesInStudy": rng.choice(["SM", "ANN", "SR"]), "limit": "25"})
            for _ in range(n)
        ],
        "latest_studies": [
            ("/studies", {"StudyDate": week(), "limit": "25", "includefield": counts})
            for _ in range(n)
        ],
        "studies_with_counts": [
            (
                "/studies",
                {"limit": "25", "offset": str(25 * rng.randrange(40)), "includefield": counts},
            )
            for _ in range(n)
        ],
        "series_of_study": [(f"/studies/{rng.choice(sample)}/series", {}) for _ in range(n)],
        "instances_of_series": [
            (f"/studies/{uid}/series/{rng.choice(series_of[uid])}/instances", {})
            for uid in (rng.choice(list(series_of)) for _ in range(n))
        ],
    }


def explain(url: str, searches: dict) -> dict[str, str]:
    """EXPLAIN ANALYZE of the first study search of each kind as QIDO runs it: the page
    (storage.query.plan.statement) and the capped count beyond it (results.run)."""
    from sqlalchemy import func, select
    from sqlalchemy.dialects import postgresql

    from storage.dicom.levels import Level
    from storage.query.keys import by_keyword
    from storage.query.plan import matched, statement
    from storage.query.results import COUNT_CAP
    from storage.query.search import Search

    engine = create_index_engine(url)
    out: dict[str, str] = {}
    for name, requests_ in searches.items():
        path, params = requests_[0]
        if path != "/studies":
            continue
        search = Search(Level.STUDY, fuzzy=params.get("fuzzymatching") == "true")
        for key, value in params.items():
            if key not in ("limit", "offset", "includefield", "fuzzymatching"):
                search.where(by_keyword(key), value)
        search.offset = int(params.get("offset", 0))
        limit = int(params.get("limit", 100))
        page = statement(search, limit + 1)
        count = select(func.count()).select_from(
            matched(search).limit(search.offset + limit + COUNT_CAP).subquery()
        )
        texts = []
        for query in (page, count):
            sql = str(
                query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
            )
            with engine.connect() as connection:
                rows = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}").all()
            texts.append(sql + "\n" + "\n".join(r[0] for r in rows))
        out[name] = "\n-- count beyond the page\n".join(texts)
    engine.dispose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1_000_000)
    parser.add_argument("--series", type=int, default=2)
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="HTTP worker processes")
    parser.add_argument("--workdir", type=Path, default=Path("/work/pgscale-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="search a kept database again")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "qido_scale.json"
    )
    args = parser.parse_args()
    if not args.reuse:
        shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    pg = args.workdir / "pg"
    if args.reuse:
        cluster = PostgresCluster(pg, port=json.loads((args.workdir / "port").read_text()))
        cluster.resume()
    else:
        cluster = PostgresCluster(pg).start()
        (args.workdir / "port").write_text(str(cluster.port))
    try:
        import psycopg

        dsn = f"host=127.0.0.1 port={cluster.port} user=wsiarchive dbname=wsiarchive"
        with psycopg.connect(dsn, autocommit=True) as connection:
            for name, value in SERVER_SETTINGS.items():
                connection.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        cluster.stop()
        cluster.resume()
        results: dict = {"settings": SERVER_SETTINGS, "goal": GOAL}
        if args.reuse:
            previous = json.loads(args.output.read_text()) if args.output.exists() else {}
            results["load"] = previous.get("load")
        else:
            print(f"loading {args.studies} studies", flush=True)
            results["load"] = load(cluster.url, args)
        server = Ours(args.workdir / "data", 18190, workers=args.workers, database_url=cluster.url)
        try:
            searches = plan(server.root, args)
            time_queries(server.root, {k: v[:20] for k, v in searches.items()})  # warm up
            processes = _children(server.process.pid)
            cpu = sum(_cpu_seconds(pid) for pid in processes)
            results["searches"] = time_queries(server.root, searches)
            results["server_cpu_seconds"] = sum(_cpu_seconds(pid) for pid in processes) - cpu
        finally:
            server.stop()
        plans = explain(cluster.url, searches)
        for name, measured in results["searches"].items():
            measured["meets_goal"] = all(measured[k] <= v for k, v in GOAL.items())
            measured["no_seq_scan"] = name not in plans or "Seq Scan" not in plans[name]
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
        args.output.with_suffix(".explain.txt").write_text(
            "\n\n".join(f"== {k}\n{v}" for k, v in plans.items()) + "\n"
        )
    finally:
        cluster.stop()
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
