"""QIDO-RS at a million instances: bulk-load the index (through the same row-building code as
every ingest) and time typical searches over HTTP, on SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/qido_search.py [--studies 10000] [--series 10] [--instances 10]
                                               [--database sqlite,postgresql] [--requests 200]
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import requests
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.peers import Ours  # noqa: E402
from storage.dicom.dataset import Identity  # noqa: E402
from storage.dicom.document import build_document  # noqa: E402
from storage.index.engine import create_index_engine, migrate  # noqa: E402
from storage.index.writes import Entry, IndexWriter  # noqa: E402
from tests.servers import PostgresCluster  # noqa: E402

SM = "1.2.840.10008.5.1.4.1.1.77.1.6"
FAMILY = [
    "Smith",
    "Müller",
    "García",
    "Nguyen",
    "O'Brien",
    "Kowalski",
    "Dubois",
    "Rossi",
    "Jensen",
    "Tanaka",
    "Novák",
    "Silva",
    "Öztürk",
    "Andersson",
    "Fischer",
    "Martin",
]
GIVEN = ["John", "Anna", "Jürgen", "Seán", "María", "Li", "Chloé", "Marco", "Ingrid", "Yuki"]
MODALITIES = ["SM"] * 7 + ["ANN", "SR", "OT"]


def study_template(number: int, rng: random.Random) -> Dataset:
    ds = Dataset()
    patient = number // 2
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = f"{FAMILY[patient % len(FAMILY)]}{patient // 160}^{GIVEN[patient % 10]}"
    ds.PatientID = f"PAT{patient:07d}"
    ds.PatientBirthDate = f"19{40 + patient % 60:02d}{1 + patient % 12:02d}{1 + patient % 28:02d}"
    ds.PatientSex = "MF"[patient % 2]
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate = f"{2015 + number % 10}{1 + (number // 10) % 12:02d}{1 + number % 28:02d}"
    ds.StudyTime = f"{rng.randrange(24):02d}{rng.randrange(60):02d}00"
    ds.AccessionNumber = f"ACC{number:07d}"
    ds.StudyID = f"S{number}"
    ds.StudyDescription = "Histopathology"
    ds.ReferringPhysicianName = "Doe^Jane"
    return ds


def entries_for_study(number: int, args: argparse.Namespace, rng: random.Random) -> list[Entry]:
    study = study_template(number, rng)
    entries = []
    for series_number in range(1, args.series + 1):
        series = copy.copy(study)
        series.SeriesInstanceUID = generate_uid()
        series.Modality = MODALITIES[(number + series_number) % len(MODALITIES)]
        series.SeriesNumber = series_number
        series.SeriesDescription = f"Slide {series_number}"
        series.SOPClassUID = SM
        series.ContainerIdentifier = f"SLIDE-{number}-{series_number}"
        specimen = Dataset()
        specimen.SpecimenIdentifier = f"SPEC-{number}-{series_number}"
        specimen.SpecimenUID = generate_uid()
        series.SpecimenDescriptionSequence = Sequence([specimen])
        for instance_number in range(1, args.instances + 1):
            ds = copy.copy(series)
            ds.SOPInstanceUID = generate_uid()
            ds.InstanceNumber = instance_number
            ds.Rows = ds.Columns = 512
            ds.NumberOfFrames = 4 ** (args.instances - instance_number + 1) // 4 or 1
            identity = Identity.of(ds)
            document = build_document(ds, identity.study, identity.series, identity.instance, "OB")
            entries.append(
                Entry(
                    identity,
                    ds,
                    "1.2.840.10008.1.2.4.50",
                    int(ds.NumberOfFrames),
                    1 << 20,
                    document,
                    None,
                    f"bench/{identity.instance}.dcm",
                )
            )
    return entries


def _load_chunk(job: tuple[str, argparse.Namespace, int, int]) -> int:
    """One worker process: build and load studies [first, last)."""
    url, args, first, last = job
    engine = create_index_engine(url)
    index = IndexWriter(engine)
    rng = random.Random(first)
    total = 0
    for number in range(first, last):
        entries = entries_for_study(number, args, rng)
        index.load(entries)
        total += len(entries)
    engine.dispose()
    return total


def load(url: str, args: argparse.Namespace) -> dict:
    """Load the index with one worker process per core (building entries is the costly part;
    SQLite serialises the short write transactions)."""
    engine = create_index_engine(url)
    migrate(engine)
    engine.dispose()
    step = 50
    jobs = [
        (url, args, first, min(first + step, args.studies))
        for first in range(0, args.studies, step)
    ]
    start = time.perf_counter()
    total = 0
    with multiprocessing.get_context("spawn").Pool(args.load_workers) as pool:
        for count in pool.imap_unordered(_load_chunk, jobs):
            total += count
            if total % 100000 < count:
                rate = total / (time.perf_counter() - start)
                print(f"  {total} instances loaded ({rate:.0f}/s)", flush=True)
    seconds = time.perf_counter() - start
    # Fresh planner statistics, as autovacuum (PostgreSQL) or PRAGMA optimize (SQLite) would
    # gather on a live archive.
    engine = create_index_engine(url)
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    engine.dispose()
    return {
        "instances": total,
        "seconds": seconds,
        "instances_per_s": total / seconds,
        "processes": args.load_workers,
    }


def queries(root: str, args: argparse.Namespace) -> dict[str, list[tuple[str, dict]]]:
    """Typical searches with random parameters, the same sequence for every database."""
    rng = random.Random(11)
    session = requests.Session()
    studies = session.get(
        root + "/studies", params={"limit": "200", "offset": str(args.studies // 3)}
    ).json()
    sample = [(s["0020000D"]["Value"][0]) for s in studies]
    series_of = {}
    for uid in sample[:50]:
        found = session.get(f"{root}/studies/{uid}/series").json()
        series_of[uid] = [s["0020000E"]["Value"][0] for s in found]
    n = args.requests
    patients = args.studies // 2

    def month() -> dict:
        year, month_ = 2015 + rng.randrange(10), 1 + rng.randrange(12)
        return {
            "StudyDate": f"{year}{month_:02d}01-{year}{month_:02d}28",
            "ModalitiesInStudy": "SM",
            "limit": "100",
        }

    return {
        "patient_id": [
            ("/studies", {"PatientID": f"PAT{rng.randrange(patients):07d}"}) for _ in range(n)
        ],
        "name_wildcard": [
            (
                "/studies",
                {"PatientName": f"{rng.choice(FAMILY)}{rng.randrange(30)}*", "limit": "100"},
            )
            for _ in range(n)
        ],
        "name_fuzzy": [
            (
                "/studies",
                {
                    "PatientName": rng.choice(FAMILY).lower()[:4],
                    "fuzzymatching": "true",
                    "limit": "100",
                },
            )
            for _ in range(n)
        ],
        "date_range_and_modality": [("/studies", month()) for _ in range(n)],
        "accession": [
            ("/studies", {"AccessionNumber": f"ACC{rng.randrange(args.studies):07d}"})
            for _ in range(n)
        ],
        "study_uid_list": [
            ("/studies", {"StudyInstanceUID": ",".join(rng.sample(sample, 5))}) for _ in range(n)
        ],
        "instances_in_series": [
            (f"/studies/{uid}/series/{rng.choice(series_of[uid])}/instances", {})
            for uid in (rng.choice(list(series_of)) for _ in range(n))
        ],
        "series_in_study": [(f"/studies/{rng.choice(sample)}/series", {}) for _ in range(n)],
    }


def time_queries(root: str, plan: dict[str, list[tuple[str, dict]]]) -> dict:
    session = requests.Session()
    out = {}
    for name, requests_ in plan.items():
        latencies = []
        results = []
        for path, params in requests_:
            start = time.perf_counter()
            response = session.get(
                root + path, params=params, headers={"Accept": "application/dicom+json"}
            )
            latencies.append(1000 * (time.perf_counter() - start))
            if response.status_code != 200:
                raise RuntimeError(f"{path} {params}: {response.status_code} {response.text}")
            results.append(len(response.json()))
        latencies.sort()
        out[name] = {
            "p50_ms": statistics.median(latencies),
            "p99_ms": latencies[int(0.99 * (len(latencies) - 1))],
            "mean_results": statistics.mean(results),
        }
        print(
            f"  {name}: p50 {out[name]['p50_ms']:.1f} ms, p99 {out[name]['p99_ms']:.1f} ms, "
            f"{out[name]['mean_results']:.1f} results",
            flush=True,
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=10000)
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--database", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--load-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--searches-only",
        action="store_true",
        help="reuse the SQLite index a previous run loaded (PostgreSQL is always reloaded)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsiarchive-qido-bench"))
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "qido_search.json"
    )
    args = parser.parse_args()
    previous = json.loads(args.output.read_text()) if args.output.exists() else {}
    results: dict = {
        "studies": args.studies,
        "series_per_study": args.series,
        "instances_per_series": args.instances,
    }
    for database in args.database.split(","):
        directory = args.workdir / database
        reuse = args.searches_only and database == "sqlite" and directory.exists()
        if not reuse:
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
        cluster = None
        if database == "postgresql":
            cluster = PostgresCluster(Path(args.workdir / "pg")).start()
            url = cluster.url
        else:
            url = f"sqlite:///{directory / 'data' / 'index.sqlite3'}"
        try:
            print(f"{database}: loading", flush=True)
            loaded = previous.get(database, {}).get("load") if reuse else load(url, args)
            server = (
                Ours(directory / "data", 18180, workers=2, database_url=url)
                if cluster
                else Ours(directory / "data", 18180, workers=2, keep=True)
            )
            try:
                print(f"{database}: searching", flush=True)
                plan = queries(server.root, args)
                results[database] = {"load": loaded, "searches": time_queries(server.root, plan)}
            finally:
                server.stop()
        finally:
            if cluster is not None:
                cluster.stop()
                shutil.rmtree(args.workdir / "pg", ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
