"""Random WSI frames under load, from wsiarchive and from Orthanc's DICOMweb plugin.

The same instances (a real sample from the shared test data and a synthetic one of at least
1 GB) are stored in both servers; wrk then asks each for random frames with
`transfer-syntax=*` at 1, 8 and 32 concurrent clients. Reported per server, instance and
concurrency: frames/s, p50 and p99 latency, the server's CPU (cores busy) and peak RSS; and the
ceiling of reading the same frames straight from the file in this process.

    .venv/bin/python benchmarks/frame_serving.py [--size-gb 1] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.peers import Orthanc, Ours, Peer, RssMonitor, add_testdata_argument  # noqa: E402
from benchmarks.stow_frames import stow  # noqa: E402
from benchmarks.synthetic import write_wsi  # noqa: E402

FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
REAL_SAMPLE = "dicom/pathml_small_dicom.dcm"
CLIENTS = (1, 8, 32)

WRK_SCRIPT = r"""
local prefix, frames, accept
local counter = 1
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  prefix = args[1]
  frames = tonumber(args[2])
  accept = args[3]
  math.randomseed(id * 7919 + os.time())
end
function request()
  return wrk.format("GET", prefix .. math.random(1, frames), {["Accept"] = accept})
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "socket_errors": %d, ' ..
    '"non_2xx": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


def frame_offsets(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of each frame of an encapsulated instance with one fragment per
    frame, found by walking the items (independent of the archive's own frame table)."""
    with open(path, "rb") as fp:
        dataset = pydicom.dcmread(fp, stop_before_pixels=True)
        frames = int(dataset.get("NumberOfFrames", 1))
        fp.seek(0)
        header = fp.read(1 << 20)
        start = header.rfind(b"\xe0\x7f\x10\x00")
        fp.seek(start + 12)  # tag, VR, reserved, undefined length
        tag, element, length = struct.unpack("<HHI", fp.read(8))  # Basic Offset Table
        fp.seek(length, os.SEEK_CUR)
        offsets = []
        while len(offsets) < frames:
            tag, element, length = struct.unpack("<HHI", fp.read(8))
            if (tag, element) != (0xFFFE, 0xE000):
                break
            offsets.append((fp.tell(), length))
            fp.seek(length, os.SEEK_CUR)
    return offsets


def ceiling(path: Path, seconds: float = 3.0) -> dict:
    """Random frames read with pread from the file, in one thread: what no server can beat."""
    offsets = frame_offsets(path)
    rng = random.Random(3)
    fd = os.open(path, os.O_RDONLY)
    count, size, start = 0, 0, time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            for _ in range(200):
                offset, length = offsets[rng.randrange(len(offsets))]
                size += len(os.pread(fd, length, offset))
                count += 1
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - start
    return {"frames_per_s": count / elapsed, "mean_frame_kb": size / count / 1024}


def wrk(url: str, frames: int, clients: int, seconds: float, script: Path) -> dict:
    command = [
        "wrk",
        f"-t{min(clients, 2)}",
        f"-c{clients}",
        f"-d{int(seconds)}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
        "--",
        urlsplit(url).path,  # origin-form: not every server takes absolute-form targets
        str(frames),
        FRAME_ACCEPT,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {result.stdout[-1000:]} {result.stderr[-1000:]}")
    raw = json.loads(line[len("RESULT ") :])
    duration = raw["duration_us"] / 1e6
    return {
        "frames_per_s": (raw["requests"] - raw["non_2xx"]) / duration,  # served frames
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "mb_per_s": raw["bytes"] / duration / 1e6,
        "requests": raw["requests"],
        "errors": raw["socket_errors"] + raw["non_2xx"],
    }


def probe(url: str) -> float:
    """Seconds for one frame, to keep a server that parses whole instances from being
    driven into exhausting the machine's memory."""
    import requests

    start = time.perf_counter()
    response = requests.get(url, headers={"Accept": FRAME_ACCEPT}, timeout=600)
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
    return time.perf_counter() - start


def serve(peer: Peer, samples: dict, args: argparse.Namespace, script: Path) -> dict:
    results: dict = {}
    with RssMonitor(peer.process.pid) as monitor:
        time.sleep(0.5)
        results["idle_rss_mb"] = monitor.peak_mb
        for name, sample in samples.items():
            stow(peer.root, sample["path"])
            uids = sample["uids"]
            prefix = (
                f"{peer.root}/studies/{uids['study']}/series/{uids['series']}"
                f"/instances/{uids['instance']}/frames/"
            )
            first = probe(prefix + "1")
            per_sample: dict = {"first_frame_s": first}
            for clients in CLIENTS:
                if first > 1.0 and clients > 1:
                    per_sample[str(clients)] = {
                        "skipped": f"one frame took {first:.1f} s: {clients} clients at once "
                        "would hold that many instances in memory"
                    }
                    continue
                cpu_before, start = monitor.cpu_seconds(), time.perf_counter()
                run = wrk(prefix, uids["frames"], clients, args.seconds, script)
                elapsed = time.perf_counter() - start
                run["server_cores"] = (monitor.cpu_seconds() - cpu_before) / elapsed
                run["peak_rss_mb"] = monitor.peak_mb
                per_sample[str(clients)] = run
                print(f"  {peer.name} {name} {clients} clients: {run}", flush=True)
            results[name] = per_sample
        results["peak_rss_mb"] = monitor.peak_mb
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--workers", type=int, default=2, help="our server's processes")
    parser.add_argument("--no-orthanc", action="store_true")
    add_testdata_argument(parser)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsiarchive-frames-bench"))
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "frame_serving.json"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    script = args.workdir / "frames.lua"
    script.write_text(WRK_SCRIPT)

    synthetic = args.workdir / f"synthetic-{args.size_gb:g}GB.dcm"
    described = synthetic.with_suffix(".json")
    if not (synthetic.exists() and described.exists()):
        print(f"writing {synthetic} ...", flush=True)
        described.write_text(json.dumps(write_wsi(synthetic, int(args.size_gb * 1e9))))
    real = args.testdata / REAL_SAMPLE
    with open(real, "rb") as fp:
        ds = pydicom.dcmread(fp, stop_before_pixels=True)
    samples = {
        "real": {
            "path": real,
            "uids": {
                "study": ds.StudyInstanceUID,
                "series": ds.SeriesInstanceUID,
                "instance": ds.SOPInstanceUID,
                "frames": int(ds.NumberOfFrames),
                "size": real.stat().st_size,
            },
        },
        "synthetic": {"path": synthetic, "uids": json.loads(described.read_text())},
    }
    os.sync()
    results: dict = {
        "samples": {
            name: {k: v for k, v in s["uids"].items() if k in ("frames", "size")}
            | {"source": str(s["path"].name)}
            for name, s in samples.items()
        },
        "cpu_count": os.cpu_count(),
        "seconds_per_run": args.seconds,
        "ceiling": {name: ceiling(s["path"]) for name, s in samples.items()},
    }
    print(f"ceiling: {results['ceiling']}", flush=True)
    ours = Ours(args.workdir / "ours", 18080, workers=args.workers)
    try:
        results["wsiarchive"] = serve(ours, samples, args, script)
    finally:
        ours.stop()
    if not args.no_orthanc:
        orthanc = Orthanc(args.workdir / "orthanc", 18042, 14242)
        try:
            results["orthanc"] = serve(orthanc, samples, args, script)
        finally:
            orthanc.stop()
        for name in samples:
            for clients in CLIENTS:
                ours_run = results["wsiarchive"][name][str(clients)]
                theirs = results["orthanc"][name][str(clients)]
                if ours_run.get("frames_per_s") and theirs.get("frames_per_s"):
                    ratio = ours_run["frames_per_s"] / theirs["frames_per_s"]
                    results.setdefault("ratios", {})[f"{name}@{clients}"] = ratio
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "samples"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
