"""The cost of the metrics on the frame hot path: wrk reads random frames from two servers in
turn, alternated in one run, one with `metrics = false` and one with the default (on), and
reports frames/s and the servers' CPU per frame of each, and their ratios.

    .venv/bin/python benchmarks/metrics_cost.py [--rounds 5] [--seconds 8] [--clients 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from benchmarks.frame_serving import WRK_SCRIPT, wrk  # noqa: E402
from benchmarks.peers import RssMonitor  # noqa: E402
from tests.dicomfiles import read  # noqa: E402
from tests.servers import ArchiveServer  # noqa: E402

SLIDE = PROJECT.parent / "shared" / "testdata" / "dicom" / "pathml_small_dicom.dcm"
RESULTS = PROJECT / "benchmarks" / "results" / "metrics_cost.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="alternations of off and on")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        script = root / "frames.lua"
        script.write_text(WRK_SCRIPT)
        dataset = read(SLIDE)
        servers = {
            "off": ArchiveServer(root / "off", {"workers": 2, "metrics": "false"}),
            "on": ArchiveServer(root / "on", {"workers": 2}),
        }
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
        try:
            for server in servers.values():
                server.start().store([SLIDE.read_bytes()])
            prefix = (
                f"/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
                f"/instances/{dataset.SOPInstanceUID}/frames/"
            )
            for number in range(args.rounds):
                # The order swaps every round, so a drift of the machine falls on both.
                order = list(servers.items())
                for name, server in order if number % 2 == 0 else reversed(order):
                    assert server.process is not None
                    monitor = RssMonitor(server.process.pid)
                    cpu = monitor.cpu_seconds()
                    run = wrk(server.url + prefix, int(dataset.NumberOfFrames), args.clients,
                              args.seconds, script)  # fmt: skip
                    assert run["errors"] == 0, run
                    spent = monitor.cpu_seconds() - cpu
                    runs[name].append(
                        {
                            "frames_per_s": run["frames_per_s"],
                            "p99_ms": run["p99_ms"],
                            "cpu_ms_per_frame": 1000 * spent / run["requests"],
                        }
                    )
                    print(name, json.dumps(runs[name][-1]), flush=True)
        finally:
            for server in servers.values():
                server.stop()
    medians = {
        name: {key: statistics.median(run[key] for run in values) for key in values[0]}
        for name, values in runs.items()
    }
    report = {
        "clients": args.clients,
        "seconds": args.seconds,
        "runs": runs,
        "median": medians,
        "on_over_off": {key: medians["on"][key] / medians["off"][key] for key in medians["on"]},
    }
    text = json.dumps(report, indent=2)
    RESULTS.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
