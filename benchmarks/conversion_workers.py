"""Conversion throughput of `wsiarchive worker` processes: the same slides submitted as jobs
to a PostgreSQL index, converted by 1 and then by 2 workers (each with one conversion
thread) into a shared blob directory, in one run; reports slides/min, MB/s of source, the
CPU time of the workers and the ratio of the two rates, with the machine's load.

    .venv/bin/python benchmarks/conversion_workers.py [--repeat 2] [--synthetic-gb 0.2]

The slides: real ones from the shared test data, --repeat times each, and two synthetic
pyramidal SVS (benchmarks/synthetic.py) whose tiles are copied on the fast path.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.convert import METADATA  # noqa: E402
from benchmarks.peers import add_testdata_argument  # noqa: E402
from benchmarks.synthetic import write_svs  # noqa: E402
from tests.servers import PostgresCluster  # noqa: E402
from tests.workers import new_database, queue_env  # noqa: E402

REAL = [
    "svs/CMU-1-Small-Region.svs",
    "svs/tcga-cr-7395-01a-01-ts1.svs",
    "ndpi/test3-DAPI-2-(387).ndpi",
    "ndpi/test3-TRITC 2 (560).ndpi",
    "ome-tiff/4D-series.ome.tiff",
]


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cluster: PostgresCluster, slides: list[Path], workers: int, work: Path) -> dict:
    """Submit every slide, then time *workers* workers until the queue is empty."""
    database = new_database(cluster)
    blobs = work / f"blobs-{workers}"
    blobs.mkdir(parents=True)
    env = queue_env(database, blobs, log_level="warning")
    submit = subprocess.run(
        [sys.executable, "-m", "wsiarchive", "submit", "--data-dir", str(work / "submit")]
        + [*METADATA, "--mpp", "0.5", *map(str, slides)],
        env=env,
        capture_output=True,
        text=True,
    )
    if submit.returncode != 0:
        raise RuntimeError(submit.stderr[-2000:])
    load_before = os.getloadavg()
    cpu_before = _cpu_of_children()
    start = time.perf_counter()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "wsiarchive", "worker", "--until-empty"]
            + ["--data-dir", str(work / f"worker-{workers}-{i}")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(work / f"worker-{workers}-{i}.log", "wb"),  # noqa: SIM115
        )
        for i in range(workers)
    ]
    codes = [process.wait() for process in processes]
    wall = time.perf_counter() - start
    cpu = _cpu_of_children() - cpu_before
    listing = subprocess.run(
        [sys.executable, "-m", "wsiarchive", "jobs", "--json", "--limit", "1000"]
        + ["--data-dir", str(work / "submit")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    jobs = json.loads(listing.stdout)
    states = {state: sum(job["state"] == state for job in jobs) for state in ("done", "failed")}
    source_bytes = sum(path.stat().st_size for path in slides)
    shutil.rmtree(blobs, ignore_errors=True)
    return {
        "workers": workers,
        "exit_codes": codes,
        "jobs": states,
        "wall_s": round(wall, 2),
        "workers_cpu_s": round(cpu, 2),
        "slides_per_min": round(len(slides) / wall * 60, 2),
        "source_mb_per_s": round(source_bytes / 1e6 / wall, 2),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "distinct_workers": len({job["worker"] for job in jobs}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_testdata_argument(parser)
    parser.add_argument("--repeat", type=int, default=2, help="submissions of each real slide")
    parser.add_argument("--synthetic-gb", type=float, default=0.2, help="each synthetic SVS")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench-cw")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "conversion_workers.json"
    )
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    slides = [args.testdata / name for name in REAL for _ in range(args.repeat)]
    for number in range(2):
        synthetic = args.workdir / f"synthetic-{number}.svs"
        write_svs(synthetic, int(args.synthetic_gb * 1e9), pyramid=True)
        slides.append(synthetic)
    cluster_dir = Path(tempfile.mkdtemp(prefix="wsiarchive-pg-bench-"))
    cluster = PostgresCluster(cluster_dir).start()
    try:
        results = [run(cluster, slides, count, args.workdir) for count in (1, 2)]
    finally:
        cluster.stop()
        shutil.rmtree(cluster_dir, ignore_errors=True)
    one, two = results
    report = {
        "slides": len(slides),
        "source_mb": round(sum(p.stat().st_size for p in slides) / 1e6, 1),
        "cpus": os.cpu_count(),
        "convert_workers_per_worker": 1,
        "runs": results,
        "ratio_2_to_1": round(two["slides_per_min"] / one["slides_per_min"], 2),
        "note": "measured on a machine shared with other jobs: see load_before/after",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
