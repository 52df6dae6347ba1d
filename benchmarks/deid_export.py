"""De-identify the same instances with `wsiarchive export` and with dicom-anonymizer's own
command (KitwareMedical, the library whose Table E.1-1 column the export uses), in one run;
report seconds, MB/s and each process's peak RSS, and the ratios.

    .venv/bin/python benchmarks/deid_export.py [--large-gb 0.5] [--repeat-small 2]

The set is the DIMSE benchmark's (benchmarks/dimse_store.py): one large synthetic JPEG WSI and
every DICOM object of the shared test data, imported into a fresh archive once (the
forwarding benchmark's, benchmarks/forwarding.py, shared with it). The export
writes every study to a folder (Basic Profile, no options; LABEL and OVERVIEW images left out
as always, so the export writes no more than the peer); the peer reads the same files from
the folder they were imported from and writes its own copies. Each is run --rounds times; the
fastest counts, and the highest peak.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.forwarding import imported_set  # noqa: E402
from benchmarks.peers import RssMonitor  # noqa: E402


def timed(command: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of *command*, which must succeed."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with RssMonitor(process.pid) as monitor:
        output, _ = process.communicate()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {output.decode(errors='replace')[-800:]}")
    return seconds, monitor.peak_mb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-gb", type=float, default=0.5)
    parser.add_argument("--repeat-small", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsiarchive-forward-bench"))
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "deid_export.json"
    )
    args = parser.parse_args()
    files, total, studies, data = imported_set(args.workdir, args.large_gb, args.repeat_small)
    anonymizer = Path(sys.executable).with_name("dicom-anonymizer")
    runs = {
        "wsiarchive_export": lambda out: [
            sys.executable, "-m", "wsiarchive", "export", *studies, "--to", str(out),
            "--data-dir", str(data), "--log-level", "warning",
        ],
        "dicom_anonymizer": lambda out: [str(anonymizer), str(args.workdir / "set"), str(out)],
    }  # fmt: skip
    results: dict[str, object] = {"instances": len(files), "bytes": total}
    for name, command in runs.items():
        times, peaks, written = [], [], 0
        for round_ in range(args.rounds):
            out = args.workdir / f"out-{name}-{round_}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            subprocess.run(["sync"], check=True)
            seconds, peak = timed(command(out))
            times.append(seconds)
            peaks.append(peak)
            written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
            shutil.rmtree(out, ignore_errors=True)
        seconds = min(times)
        results[name] = {
            "seconds": round(seconds, 2),
            "all_seconds": [round(t, 2) for t in times],
            "mb_per_s": round(total / 1e6 / seconds, 1),
            "peak_rss_mb": round(max(peaks), 1),
            "bytes_written": written,
        }
        print(f"  {name}: {results[name]}", flush=True)
    ours, peer = results["wsiarchive_export"], results["dicom_anonymizer"]
    assert isinstance(ours, dict) and isinstance(peer, dict)
    results["speed_ratio_to_dicom_anonymizer"] = round(peer["seconds"] / ours["seconds"], 2)
    results["memory_ratio_to_dicom_anonymizer"] = round(
        ours["peak_rss_mb"] / peer["peak_rss_mb"], 2
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if "ratio" in k}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
