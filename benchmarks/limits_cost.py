"""The cost of the per-client limits on the frame hot path: wrk reads random frames from two
servers in turn, one with no limits and one with a rate limit and an in-flight limit set
high enough never to refuse, and reports frames/s of each and their ratio."""

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
from tests.dicomfiles import read  # noqa: E402
from tests.servers import ArchiveServer  # noqa: E402

SLIDE = PROJECT.parent / "shared" / "testdata" / "dicom" / "pathml_small_dicom.dcm"
LIMITS_ON = {"rate_limit": "1000000", "rate_burst": "1000000", "max_in_flight": "64"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of off and on")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        script = root / "frames.lua"
        script.write_text(WRK_SCRIPT)
        dataset = read(SLIDE)
        servers = {
            "off": ArchiveServer(root / "off", {"workers": 2}),
            "on": ArchiveServer(root / "on", {"workers": 2, **LIMITS_ON}),
        }
        runs: dict[str, list[float]] = {name: [] for name in servers}
        try:
            for server in servers.values():
                server.start().store([SLIDE.read_bytes()])
            prefix = (
                f"/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
                f"/instances/{dataset.SOPInstanceUID}/frames/"
            )
            for _ in range(args.rounds):
                for name, server in servers.items():
                    run = wrk(server.url + prefix, int(dataset.NumberOfFrames), args.clients,
                              args.seconds, script)  # fmt: skip
                    assert run["errors"] == 0, run
                    runs[name].append(run["frames_per_s"])
        finally:
            for server in servers.values():
                server.stop()
    medians = {name: statistics.median(values) for name, values in runs.items()}
    ratio = medians["on"] / medians["off"]
    report = {"runs": runs, "median_frames_per_s": medians, "on_over_off": ratio}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
