"""Convert the same slides with `wsiarchive convert`, the wsidicomizer CLI and
OrthancWSIDicomizer (Debian orthanc-wsi) in one run; report wall time, CPU time, peak RSS and
output size of each, and the ratio to a plain `cp` of the source.

    .venv/bin/python benchmarks/convert.py [--size-gb 3] [--generated-size-gb 0.5] [--repeat 3]

Slides: a large synthetic pyramidal SVS (every 2x level present: nothing to generate), a
smaller base-only SVS (every level must be generated), both with JPEG tiles, and real slides
from the shared test data. The smaller slides are converted --repeat times by each tool, in
turn, and the median run is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.peers import add_testdata_argument  # noqa: E402
from benchmarks.synthetic import write_svs  # noqa: E402

BIN = Path(sys.executable).parent
METADATA = [
    "--container-id",
    "BENCH-1",
    "--anatomy",
    "SCT:39607008:Lung structure",
    "--stain",
    "hematoxylin stain",
    "--stain",
    "water soluble eosin stain",
]


def measured(command: list[str], output: Path) -> dict:
    """Run *command* under GNU time, then sync; wall time includes the sync."""
    shutil.rmtree(output, ignore_errors=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    if command[0] == "OrthancWSIDicomizer":
        output.mkdir()  # it writes into an existing folder
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    subprocess.run(["sync"], check=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr[-2000:]}")

    def field(name: str) -> float:
        match = re.search(rf"{name}.*?: ([\d.:]+)", result.stderr)
        return float(match.group(1)) if match else 0.0

    size = (
        sum(p.stat().st_size for p in output.rglob("*") if p.is_file())
        if output.is_dir()
        else output.stat().st_size
    )
    return {
        "wall_s": wall,
        "cpu_s": field("User time") + field("System time"),
        "peak_rss_mb": field("Maximum resident set size") / 1024,
        "output_bytes": size,
    }


def run_slide(source: Path, work: Path, generated: bool, repeat: int = 1) -> dict:
    """Each tool converts *source* *repeat* times (interleaved); the median run is kept."""
    copy = work / f"cp{source.suffix}"
    openslide = next(Path(sys.prefix).rglob("libopenslide.so*"), None)
    tools = {
        "cp": (["cp", str(source), str(copy)], copy),
        "wsiarchive": (
            [str(BIN / "wsiarchive"), "convert", str(source), "-o", str(work / "ours"), *METADATA],
            work / "ours",
        ),
        "wsidicomizer": (
            [
                str(BIN / "wsidicomizer"),
                "-i",
                str(source),
                "-o",
                str(work / "wsidicomizer"),
                "--add-missing-levels",
            ],
            work / "wsidicomizer",
        ),
        "orthanc_wsi": (
            [
                "OrthancWSIDicomizer",
                f"--folder={work / 'orthanc'}",
                f"--threads={os.cpu_count()}",
                "--max-size=0",
                *(["--pyramid=1"] if generated else []),
                *([f"--openslide={openslide}"] if openslide and source.suffix != ".svs" else []),
                str(source),
            ],
            work / "orthanc",
        ),
    }
    runs: dict[str, list[dict]] = {}
    for attempt in range(repeat):
        for name, (command, output) in tools.items():
            if name == "orthanc_wsi" and not shutil.which("OrthancWSIDicomizer"):
                continue
            print(f"  {name} ({attempt + 1}/{repeat}) ...", flush=True)
            try:
                runs.setdefault(name, []).append(measured(command, output))
            except RuntimeError as exc:  # a peer that cannot read this format
                print(f"    {exc}", flush=True)
                runs.setdefault(name, []).append({"failed": str(exc)[-300:]})
            print(f"    {runs[name][-1]}", flush=True)
            if name != "cp":
                shutil.rmtree(output, ignore_errors=True)
        copy.unlink(missing_ok=True)
    out: dict = {}
    for name, results in runs.items():
        good = sorted((r for r in results if "wall_s" in r), key=lambda r: r["wall_s"])
        out[name] = good[len(good) // 2] if good else results[-1]
        out[name]["runs"] = len(good)
    ours = out["wsiarchive"]["wall_s"]
    for peer in ("wsidicomizer", "orthanc_wsi"):
        if "wall_s" in out.get(peer, {}):
            out[f"speedup_vs_{peer}"] = out[peer]["wall_s"] / ours
    out["time_vs_cp"] = ours / out["cp"]["wall_s"]
    return out


REAL = ["svs/CMU-1-Small-Region.svs", "ndpi/test3-DAPI-2-(387).ndpi"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=3.0)
    parser.add_argument("--generated-size-gb", type=float, default=0.5)
    parser.add_argument("--no-generated", action="store_true")
    parser.add_argument("--no-pyramid", action="store_true", help="skip the large pyramid")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the smaller slides")
    add_testdata_argument(parser, help="real slides converted too, when present")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsiarchive-convert-bench"))
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "convert.json"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    slides = [] if args.no_pyramid else [("pyramid", args.size_gb, True)]
    if not args.no_generated:
        slides.append(("base_only", args.generated_size_gb, False))
    for name, size, pyramid in slides:
        source = args.workdir / f"{name}-{size:g}GB.svs"
        described = source.with_suffix(".json")
        if not (source.exists() and described.exists()):
            print(f"writing {source} ...", flush=True)
            described.write_text(json.dumps(write_svs(source, int(size * 1e9), pyramid=pyramid)))
        info = json.loads(described.read_text())
        print(f"{name}: {info}", flush=True)
        repeat = 1 if pyramid else args.repeat
        results[name] = {
            "source": info,
            **run_slide(source, args.workdir / "out", not pyramid, repeat),
        }
    for name in REAL:
        source = args.testdata / name
        if source.exists():
            print(f"{name} ...", flush=True)
            results[name] = {
                "source": {"size": source.stat().st_size},
                **run_slide(source, args.workdir / "out", True, args.repeat),
            }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: {m: v for m, v in r.items() if not isinstance(v, dict)}
                for k, r in results.items()
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
