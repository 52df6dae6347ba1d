"""STOW a ≥ 2 GB multi-frame WSI instance and read random frames, on wsiarchive and Orthanc.

Reports STOW MB/s, frames/s with latency percentiles and each server's peak RSS (the summed
RSS of its process tree, sampled every 50 ms), and the ratios of ours to Orthanc's.

    .venv/bin/python benchmarks/stow_frames.py [--size-gb 2] [--frames 3000] [--clients 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import ssl
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.peers import Orthanc, Ours, Peer, RssMonitor  # noqa: E402
from benchmarks.synthetic import write_wsi  # noqa: E402

BOUNDARY = "wsiarchive-benchmark-boundary"
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def stow(root: str, path: Path) -> tuple[int, float]:
    """POST one Part-10 file as multipart/related, streamed with sendfile; (status, seconds)."""
    prefix = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    suffix = f"\r\n--{BOUNDARY}--\r\n".encode()
    size = path.stat().st_size
    parts = urlsplit(root)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":  # a benchmark's own self-signed certificate
        unverified = ssl._create_unverified_context()
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=3600, context=unverified
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=3600)
    start = time.perf_counter()
    connection.putrequest("POST", parts.path + "/studies")
    connection.putheader(
        "Content-Type", f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    )
    connection.putheader("Content-Length", str(len(prefix) + size + len(suffix)))
    connection.putheader("Accept", "application/dicom+json")
    connection.endheaders()
    connection.send(prefix)
    with open(path, "rb") as fp:
        connection.sock.sendfile(fp)
    connection.send(suffix)
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - start
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"STOW answered {response.status}: {body[:500]!r}")
    return response.status, elapsed


def read_frames(
    root: str, uids: dict, numbers: list[int], clients: int, guard: RssMonitor, limit_mb: float
) -> dict:
    """Random frame reads by *clients* threads; stops early if the server's RSS passes
    *limit_mb* (Orthanc parses the whole instance per frame and can exhaust the machine)."""
    url = (
        f"{root}/studies/{uids['study']}/series/{uids['series']}/instances/{uids['instance']}"
        "/frames/{}"
    )
    local = threading.local()
    latencies: list[float] = []
    sizes: list[int] = []
    aborted = threading.Event()

    def one(number: int) -> None:
        if aborted.is_set():
            return
        if guard.peak_mb > limit_mb:
            aborted.set()
            return
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        start = time.perf_counter()
        try:
            response = session.get(url.format(number), headers={"Accept": FRAME_ACCEPT})
        except requests.ConnectionError:
            aborted.set()
            return
        latencies.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"frame {number}: {response.status_code} {response.text[:200]}")
        sizes.append(len(response.content))

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, numbers))
    elapsed = time.perf_counter() - start
    latencies.sort()
    if not latencies:
        return {"frames_read": 0, "aborted": True}
    return {
        "frames_read": len(latencies),
        "aborted": aborted.is_set(),
        "frames_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "mean_frame_kb": statistics.mean(sizes) / 1024,
    }


def measure(peer: Peer, root: str, path: Path, uids: dict, args: argparse.Namespace) -> dict:
    rng = random.Random(1)
    numbers = [rng.randint(1, uids["frames"]) for _ in range(args.frames)]
    result: dict = {}
    with RssMonitor(peer.process.pid) as monitor:
        time.sleep(0.3)
        result["idle_rss_mb"] = monitor.peak_mb
        cpu_before = monitor.cpu_seconds()
        _, seconds = stow(root, path)
        result.update(
            stow_seconds=seconds,
            stow_mb_per_s=path.stat().st_size / 1e6 / seconds,
            stow_cpu_seconds=monitor.cpu_seconds() - cpu_before,
            stow_peak_rss_mb=monitor.peak_mb,
        )
        print(f"  {peer.name} STOW: {result['stow_mb_per_s']:.0f} MB/s", flush=True)
        # The same small sequential sample on every peer, then the concurrent random load.
        result["sequential"] = read_frames(root, uids, numbers[:10], 1, monitor, args.rss_limit_mb)
        sequential = result["sequential"]
        if sequential.get("p50_ms", 0) > 1000:
            # Each client would hold a whole instance in memory: the machine cannot take it.
            result["concurrent"] = {
                "skipped": f"sequential frame reads took {sequential['p50_ms'] / 1000:.1f} s "
                f"each with a peak RSS of {monitor.peak_mb:.0f} MB",
                "aborted": True,
            }
        else:
            result["concurrent"] = read_frames(
                root, uids, numbers, args.clients, monitor, args.rss_limit_mb
            )
    result["peak_rss_mb"] = monitor.peak_mb
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--frames", type=int, default=3000, help="random frame requests")
    parser.add_argument("--clients", type=int, default=8, help="concurrent frame clients")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsiarchive-bench"))
    parser.add_argument("--no-orthanc", action="store_true")
    parser.add_argument(
        "--rss-limit-mb",
        type=float,
        default=8000,
        help="stop a server's frame reads once its RSS passes this (protects the machine)",
    )
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "stow_frames.json"
    )
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"synthetic-{args.size_gb:g}GB.dcm"
    described = path.with_suffix(".json")
    if path.exists() and described.exists():
        uids = json.loads(described.read_text())
    else:
        print(f"writing {path} ...", flush=True)
        uids = write_wsi(path, int(args.size_gb * 1e9))
        described.write_text(json.dumps(uids))
    # Let the kernel finish writing the test file before anything is timed.
    os.sync()
    print(f"  {uids['size'] / 1e9:.2f} GB, {uids['frames']} JPEG frames", flush=True)
    results: dict = {
        "instance_bytes": uids["size"],
        "frames_in_instance": uids["frames"],
        "frame_requests": args.frames,
        "clients": args.clients,
    }
    ours = Ours(args.workdir / "ours", 18080)
    try:
        results["wsiarchive"] = measure(ours, ours.root, path, uids, args)
    finally:
        ours.stop()
    print(json.dumps(results["wsiarchive"], indent=2), flush=True)
    if not args.no_orthanc:
        if not Orthanc.available():
            raise SystemExit(
                "Orthanc with its DICOMweb plugin is missing: scripts/setup.sh --bench"
            )
        orthanc = Orthanc(args.workdir / "orthanc", 18042, 14242)
        try:
            results["orthanc"] = measure(orthanc, orthanc.root, path, uids, args)
        finally:
            orthanc.stop()
        print(json.dumps(results["orthanc"], indent=2), flush=True)
        results["ratio_stow_mb_per_s"] = (
            results["wsiarchive"]["stow_mb_per_s"] / results["orthanc"]["stow_mb_per_s"]
        )
        for kind in ("sequential", "concurrent"):
            theirs = results["orthanc"][kind]
            if theirs.get("frames_per_s") and not theirs["aborted"]:
                results[f"ratio_{kind}_frames_per_s"] = (
                    results["wsiarchive"][kind]["frames_per_s"] / theirs["frames_per_s"]
                )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k.startswith("ratio")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
