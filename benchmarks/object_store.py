"""Object storage against the filesystem store, and obstore against the other Python clients.

One run, on one machine, against moto's S3 server and Azurite started on loopback: STOW-RS
MB/s and random frames/s (p50/p99, cold and with the read cache warm) of a synthetic JPEG WSI
for the filesystem store, S3 and Azure Blob; then ranged GETs of frame-sized ranges of the
same object by obstore, boto3 and azure-storage-blob. moto and Azurite measure the code path
(client, signing, HTTP, the archive), not a cloud's latency: they answer from memory on this
machine, so real S3 / Azure first-byte latencies (tens of ms) are not in these figures; and
moto, in Python, copies the whole object for each ranged GET, so its cold figures fall with
the instance's size where S3's would not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.peers import Ours, RssMonitor  # noqa: E402
from benchmarks.stow_frames import read_frames, stow  # noqa: E402
from benchmarks.synthetic import write_wsi  # noqa: E402
from tests.servers import ObjectBucket, ObjectServer  # noqa: E402


def serve(name: str, workdir: Path, path: Path, uids: dict, settings: dict, args) -> dict:
    """STOW the instance into a fresh server, then read random frames: a cold pass (every
    frame requested once) and warm passes over the same frames."""
    ours = Ours(workdir / name, 18090, workers=2, name=name, settings=settings)
    result: dict = {}
    try:
        with RssMonitor(ours.process.pid) as monitor:
            cpu = monitor.cpu_seconds()
            _, seconds = stow(ours.root, path)
            result["stow_mb_per_s"] = uids["size"] / 1e6 / seconds
            result["stow_server_cpu_s_per_gb"] = (monitor.cpu_seconds() - cpu) / (
                uids["size"] / 1e9
            )
            numbers = list(range(1, uids["frames"] + 1))
            random.Random(1).shuffle(numbers)
            numbers = numbers[: args.frames]
            # Each worker process has its own cache: a frame is warm in the worker that
            # served it, so the warm figure is that of the last of several passes.
            for label in ["cold", *(f"warm{n}" for n in range(1, args.passes))]:
                cpu = monitor.cpu_seconds()
                found = read_frames(ours.root, uids, numbers, args.clients, monitor, 8000)
                found["server_cpu_ms_per_frame"] = (
                    1000 * (monitor.cpu_seconds() - cpu) / max(found["frames_read"], 1)
                )
                result[label] = found
            result["peak_rss_mb"] = monitor.peak_mb
    finally:
        ours.stop()
    print(name, json.dumps(result), flush=True)
    return result


def _timed(ranges: list[tuple[int, int]], get: Callable[[int, int], bytes], threads: int) -> dict:
    """p50/p99 of one-at-a-time ranged GETs, then the rate of *threads* clients at once."""
    latencies = []
    for offset, length in ranges[: len(ranges) // 4]:
        start = time.perf_counter()
        assert len(get(offset, length)) == length
        latencies.append(time.perf_counter() - start)
    latencies.sort()
    process = time.process_time()
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        sizes = list(pool.map(lambda r: len(get(*r)), ranges))
    elapsed = time.perf_counter() - start
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        f"gets_per_s_{threads}_threads": len(ranges) / elapsed,
        f"mb_per_s_{threads}_threads": sum(sizes) / 1e6 / elapsed,
        "client_cpu_ms_per_get": 1000 * (time.process_time() - process) / len(ranges),
    }


def ceiling(bucket: ObjectBucket, path: Path) -> float:
    """MB/s of the emulator itself: the instance file uploaded straight by obstore, with the
    archive's part size and concurrency (the most any STOW through the archive can reach)."""
    import obstore
    from obstore.store import from_url

    from storage.blobs.objectstore import PART, UPLOADS, store_options

    store = from_url(bucket.url, **store_options(bucket.options))
    start = time.perf_counter()
    with open(path, "rb") as fp:
        obstore.put(store, "ceiling.bin", fp, chunk_size=PART, max_concurrency=UPLOADS)
    elapsed = time.perf_counter() - start
    obstore.delete(store, "ceiling.bin")
    return path.stat().st_size / 1e6 / elapsed


def clients(bucket: ObjectBucket, args) -> dict:
    """Ranged GETs of frame-sized ranges of one 8 MiB object by each library (small, since
    moto reads a whole object for every ranged GET: its cost grows with the object)."""
    import obstore
    from obstore.store import from_url

    from storage.blobs.objectstore import store_options

    rng = random.Random(2)
    length, size, key = args.range_kb << 10, 8 << 20, "bench/ranges.bin"
    ranges = [(rng.randrange(0, size - length), length) for _ in range(args.gets)]
    store = from_url(bucket.url, **store_options(bucket.options))
    obstore.put(store, key, os.urandom(size))
    found = {
        "obstore": _timed(
            ranges, lambda o, n: bytes(obstore.get_range(store, key, start=o, length=n)), 8
        )
    }
    full = bucket.prefix + key
    if bucket.server.kind == "s3":
        s3 = bucket.server.s3_client()

        def boto(offset: int, count: int) -> bytes:
            answer = s3.get_object(
                Bucket=bucket.name, Key=full, Range=f"bytes={offset}-{offset + count - 1}"
            )
            return answer["Body"].read()

        found["boto3"] = _timed(ranges, boto, 8)
    else:
        blob = bucket.server.azure_client().get_blob_client(bucket.name, full)
        found["azure-storage-blob"] = _timed(
            ranges, lambda o, n: blob.download_blob(offset=o, length=n).readall(), 8
        )
    print(bucket.server.kind, json.dumps(found), flush=True)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Small: moto copies the whole object for every ranged GET (~90 ms at 50 MB, 10 ms at 1 MB).
    parser.add_argument("--size-mb", type=int, default=24)
    parser.add_argument("--frames", type=int, default=150, help="frames per pass")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--passes", type=int, default=4, help="over the same frames: 1 cold")
    parser.add_argument("--gets", type=int, default=400, help="ranged GETs per library")
    parser.add_argument("--range-kb", type=int, default=140, help="a frame's size")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsiarchive-bench-objects"))
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "object_store.json"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"synthetic-{args.size_mb}MB.dcm"
    described = path.with_suffix(".json")
    if path.exists() and described.exists():
        uids = json.loads(described.read_text())
    else:
        uids = write_wsi(path, args.size_mb * 1_000_000)
        described.write_text(json.dumps(uids))
    os.sync()
    results: dict = {
        "note": "moto and Azurite on loopback measure the code path, not cloud latency",
        "instance_bytes": uids["size"],
        "frames_in_instance": uids["frames"],
        "frames_per_pass": min(args.frames, uids["frames"]),
        "clients": args.clients,
        "server": "2 workers; blob_cache_mb 512 per worker",
    }
    servers = {kind: ObjectServer(kind).start() for kind in ("s3", "azure")}
    try:
        results["filesystem"] = serve("filesystem", args.workdir, path, uids, {}, args)
        for kind, server in servers.items():
            bucket = server.bucket(f"bench-{kind}")
            settings = {**bucket.settings, "blob_cache_mb": "512"}
            upload = ceiling(bucket, path)
            results[kind] = serve(kind, args.workdir, path, uids, settings, args)
            results[kind]["direct_upload_mb_per_s"] = upload
            results[kind]["stow_vs_direct_upload"] = results[kind]["stow_mb_per_s"] / upload
            results[kind]["clients"] = clients(bucket, args)
    finally:
        for server in servers.values():
            server.stop()
    base, last = results["filesystem"], f"warm{args.passes - 1}"
    for kind in servers:
        mine = results[kind]
        results[f"ratio_{kind}_vs_filesystem"] = {
            "stow_mb_per_s": mine["stow_mb_per_s"] / base["stow_mb_per_s"],
            "frames_per_s_cold": mine["cold"]["frames_per_s"] / base["cold"]["frames_per_s"],
            "frames_per_s_warm": mine[last]["frames_per_s"] / base[last]["frames_per_s"],
        }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k.startswith("ratio")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
