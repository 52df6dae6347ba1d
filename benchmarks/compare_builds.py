"""This build against an earlier one on the hot paths, alternated in one run: STOW-RS of a
large instance, random frames under load, and QIDO-RS searches over one shared index.

Both builds serve the same data from the same machine with the same settings; each round runs
them in turn (the order swapped every round), so drifts of the machine fall on both. Reported
per measurement: the median over the rounds for each build and the ratio new / old.

    .venv/bin/python benchmarks/compare_builds.py --baseline c0bd63b [--new REF] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.frame_serving import WRK_SCRIPT, wrk  # noqa: E402
from benchmarks.peers import Ours, RssMonitor  # noqa: E402
from benchmarks.qido_search import queries, time_queries  # noqa: E402
from benchmarks.stow_frames import stow  # noqa: E402
from benchmarks.synthetic import write_wsi  # noqa: E402
from tests.servers import free_port  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
CLIENTS = (8, 32)


def build_tree(ref: str, workdir: Path) -> Path:
    """A detached worktree of *ref* (made once, reused while it is at that commit)."""
    commit = subprocess.run(
        ["git", "-C", str(PROJECT), "rev-parse", ref], capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = workdir / f"baseline-{commit[:12]}"
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(PROJECT), "worktree", "add", "--detach", str(tree), commit],
            check=True,
            capture_output=True,
        )
    return tree


def index_of(build: str, tree: Path | None, args: argparse.Namespace) -> Path:
    """The QIDO index of one build, loaded by that build's own code (so each has its own
    schema) with the same generated studies (the load is seeded)."""
    data = args.workdir / f"qido-{build}-{revision(tree)[:12]}" / "data"
    if not (data / "index.sqlite3").exists():
        print(f"loading the index of the {build} build ...", flush=True)
        data.mkdir(parents=True, exist_ok=True)
        namespace = {k: v for k, v in vars(args).items() if isinstance(v, int | float | str)}
        url = f"sqlite:///{data / 'index.sqlite3'}"
        code = (
            "import argparse; from benchmarks.qido_search import load; "
            f"load({url!r}, argparse.Namespace(**{namespace!r}))"
        )
        env = {**os.environ, "PYTHONPATH": str(tree or PROJECT)}
        subprocess.run([sys.executable, "-c", code], cwd=tree or PROJECT, env=env, check=True)
    return data


def revision(tree: Path | None) -> str:
    """The commit a tree is at (this checkout's HEAD for None)."""
    return subprocess.run(
        ["git", "-C", str(tree or PROJECT), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def one_round(build: str, source: Path | None, args: argparse.Namespace, data: dict) -> dict:
    """STOW and frames on an empty archive, then searches on the shared index."""
    results: dict = {}
    server = Ours(args.workdir / f"{build}-stow" / "data", free_port(), workers=2, source=source,
                  name=build)  # fmt: skip
    try:
        monitor = RssMonitor(server.process.pid)
        cpu = monitor.cpu_seconds()
        _, seconds = stow(server.root, data["wsi"])
        size = data["wsi"].stat().st_size
        results["stow_mb_per_s"] = size / seconds / 1e6
        # The server's CPU per GB stored: the disk's speed, which varies from run to run on a
        # shared machine, falls out of it.
        results["stow_cpu_s_per_gb"] = (monitor.cpu_seconds() - cpu) / (size / 1e9)
        uids = data["uids"]
        prefix = (
            f"{server.root}/studies/{uids['study']}/series/{uids['series']}"
            f"/instances/{uids['instance']}/frames/"
        )
        for clients in CLIENTS:
            cpu = monitor.cpu_seconds()
            run = wrk(prefix, uids["frames"], clients, args.seconds, data["script"])
            figures = {k: run[k] for k in ("frames_per_s", "p50_ms", "p99_ms")}
            # The server's CPU per frame: steadier than throughput on a shared machine.
            figures["cpu_ms_per_frame"] = 1000 * (monitor.cpu_seconds() - cpu) / run["requests"]
            results[f"frames_{clients}"] = figures
    finally:
        server.stop()
    server = Ours(data["qido"][build], free_port(), workers=2, keep=True, source=source, name=build)
    try:
        plan = queries(server.root, args)
        results["qido"] = time_queries(server.root, plan)
    finally:
        server.stop()
    print(f"{build}: {json.dumps(results)}", flush=True)
    return results


def _median(runs: list[dict], *path: str) -> float:
    values = []
    for run in runs:
        for step in path:
            run = run[step]
        values.append(float(run))  # type: ignore[arg-type]
    return statistics.median(values)


def summary(runs: dict[str, list[dict]]) -> dict:
    """Median of each figure over the rounds, per build, and the ratio new / old."""
    figures: dict[str, tuple[str, ...]] = {
        "stow_mb_per_s": ("stow_mb_per_s",),
        "stow_cpu_s_per_gb": ("stow_cpu_s_per_gb",),
    }
    for clients in CLIENTS:
        for field in ("frames_per_s", "p50_ms", "p99_ms", "cpu_ms_per_frame"):
            figures[f"frames_{clients}_{field}"] = (f"frames_{clients}", field)
    for name in runs["new"][0]["qido"]:
        for field in ("p50_ms", "p99_ms"):
            figures[f"qido_{name}_{field}"] = ("qido", name, field)
    out = {}
    for figure, path in figures.items():
        old, new = _median(runs["old"], *path), _median(runs["new"], *path)
        out[figure] = {"old": old, "new": new, "ratio": new / old if old else None}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git ref of the earlier build")
    parser.add_argument("--new", default="", help="git ref of the later build (default: this one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-gb", type=float, default=1.0, help="of the STOWed instance")
    parser.add_argument("--seconds", type=int, default=8, help="per wrk run")
    parser.add_argument("--studies", type=int, default=1000, help="in the shared QIDO index")
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--requests", type=int, default=100, help="per kind of search")
    parser.add_argument("--load-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsiarchive-compare"))
    parser.add_argument(
        "--output", type=Path, default=PROJECT / "benchmarks" / "results" / "compare_builds.json"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    old_tree = build_tree(args.baseline, args.workdir)
    new_tree = build_tree(args.new, args.workdir) if args.new else None
    script = args.workdir / "frames.lua"
    script.write_text(WRK_SCRIPT)
    wsi = args.workdir / "synthetic.dcm"
    uids = write_wsi(wsi, int(args.size_gb * (1 << 30)))
    builds = {"old": old_tree, "new": new_tree}
    qido = {build: index_of(build, tree, args) for build, tree in builds.items()}
    data = {"wsi": wsi, "uids": uids, "script": script, "qido": qido}
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    started = time.time()
    for number in range(args.rounds):
        order = ["old", "new"] if number % 2 == 0 else ["new", "old"]
        for build in order:
            runs[build].append(one_round(build, builds[build], args, data))
    report = {
        "baseline": args.baseline,
        "new": revision(new_tree),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "arguments": {k: str(v) for k, v in vars(args).items()},
        "seconds": time.time() - started,
        "runs": runs,
        "summary": summary(runs),
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for figure, values in report["summary"].items():
        ratio = values["ratio"]
        print(
            f"{figure:44s} old {values['old']:10.1f}  new {values['new']:10.1f}  "
            f"new/old {ratio:5.2f}"
            if ratio is not None
            else figure
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
