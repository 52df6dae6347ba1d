"""A bounded load with authentication on, then no lost writes; and what a bearer token costs
on the frame hot path.

A real server without anonymous access (2 workers) holds real slides from the shared test
data. 32 reader threads with a read token search (QIDO-RS), read metadata and random frames,
while 4 writer threads with a write token STOW fresh copies of a real slide (new UIDs, made
with pydicom), for a bounded time. Reported per kind of request: count, errors (must be 0),
p50 / p99. Then every acknowledged STOW instance is read back and compared byte for byte
(SHA-256), and `wsiarchive verify --json` must find nothing.

Then the same data is served with anonymous access from loopback, and wrk asks for random
frames at 32 connections, alternately with `Authorization: Bearer <read token>` and without,
several rounds each: frames/s and p99 of both, and their ratio.

    .venv/bin/python benchmarks/load_auth.py [--seconds 120] [--frame-seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pydicom
import requests
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.frame_serving import WRK_SCRIPT  # noqa: E402
from benchmarks.peers import add_testdata_argument  # noqa: E402
from tests.dicomfiles import multipart_body  # noqa: E402
from tests.servers import ArchiveServer  # noqa: E402

READERS, WRITERS = 32, 4
# The slides readers read: a wsi2dcm level, a PathML level and a 3DHISTECH pyramid.
SLIDES = ["dicom/wsi2dcm_jpeg.dcm", "dicom/pathml_small_dicom.dcm"] + [
    f"dicom/3dhistech-wg26-BPAEC/{name}" for name in ("5_0", "6_0", "7_0", "8_0", "9_0")
]
COPIED = "dicom/wsi2dcm_jpeg.dcm"  # what writers store fresh copies of (150 kB, 40 frames)
FRAME_SLIDE = "dicom/pathml_small_dicom.dcm"  # the frames wrk asks for (42 of 36 kB)
FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
DICOM = "application/dicom; transfer-syntax=*"

# frame_serving's script, with an optional Authorization header as its fourth argument.
AUTH_WRK_SCRIPT = (
    WRK_SCRIPT.replace("local prefix, frames, accept", "local prefix, frames, accept, auth")
    .replace("  accept = args[3]\n", '  accept = args[3]\n  auth = args[4] or ""\n')
    .replace(
        '  return wrk.format("GET", prefix .. math.random(1, frames), {["Accept"] = accept})',
        '  local headers = {["Accept"] = accept}\n'
        '  if auth ~= "" then headers["Authorization"] = "Bearer " .. auth end\n'
        '  return wrk.format("GET", prefix .. math.random(1, frames), headers)',
    )
)


def read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def part10(dataset: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def token(data: Path, name: str, scopes: str) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "wsiarchive", "token", "create", name, "--scopes", scopes],
        capture_output=True,
        text=True,
        env={**os.environ, "WSIARCHIVE_DATA_DIR": str(data)},
        check=True,
    )
    return made.stdout.strip()


def stow(url: str, parts: list[bytes], bearer: str, session: requests.Session) -> list[str]:
    """STOW-RS *parts*; the SOP Instance UIDs the response acknowledges as stored."""
    body, content_type = multipart_body(parts)
    response = session.post(
        url + "/studies",
        data=body,
        headers={
            "Content-Type": content_type,
            "Accept": "application/dicom+json",
            "Authorization": f"Bearer {bearer}",
        },
        timeout=120,
    )
    if response.status_code != 200:
        raise RuntimeError(f"STOW {response.status_code}: {response.text[:300]}")
    answer = response.json()
    if "00081198" in answer:
        raise RuntimeError(f"STOW failed instances: {answer['00081198']}")
    return [item["00081155"]["Value"][0] for item in answer["00081199"]["Value"]]


@dataclass
class Instance:
    study: str
    series: str
    uid: str
    frames: int

    @property
    def path(self) -> str:
        return f"/studies/{self.study}/series/{self.series}/instances/{self.uid}"


@dataclass
class Results:
    """Latencies and errors per kind of request, and the writes acknowledged."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    written: dict[str, tuple[str, str, str]] = field(
        default_factory=dict
    )  # uid -> study, series, sha

    def add(self, kind: str, seconds: float, error: str | None = None) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            if error is not None:
                self.errors[kind].append(error)

    def summary(self, elapsed: float) -> dict:
        report = {}
        for kind, values in sorted(self.latencies.items()):
            ordered = sorted(values)
            report[kind] = {
                "requests": len(ordered),
                "per_s": len(ordered) / elapsed,
                "errors": len(self.errors[kind]),
                "p50_ms": 1000 * ordered[len(ordered) // 2],
                "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
                "error_samples": self.errors[kind][:5],
            }
        return report


def reader(
    url: str,
    bearer: str,
    slides: list[Instance],
    stop: threading.Event,
    results: Results,
    seed: int,
) -> None:
    rng = random.Random(seed)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {bearer}"
    while not stop.is_set():
        slide = rng.choice(slides)
        choice = rng.random()
        if choice < 0.2:
            kind = "qido"
            target, params, accept = rng.choice(
                [
                    ("/studies", {"limit": "20"}, "application/dicom+json"),
                    ("/studies", {"StudyInstanceUID": slide.study}, "application/dicom+json"),
                    (f"/studies/{slide.study}/series", {}, "application/dicom+json"),
                    (
                        f"/studies/{slide.study}/series/{slide.series}/instances",
                        {},
                        "application/dicom+json",
                    ),
                ]
            )
        elif choice < 0.4:
            kind, target, params, accept = (
                "metadata",
                slide.path + "/metadata",
                {},
                "application/dicom+json",
            )
        else:
            kind = "frame"
            target, params, accept = (
                f"{slide.path}/frames/{rng.randint(1, slide.frames)}",
                {},
                FRAMES,
            )
        began = time.perf_counter()
        try:
            response = session.get(
                url + target, params=params, headers={"Accept": accept}, timeout=60
            )
            error = None if response.status_code == 200 else f"{response.status_code} {target}"
            response.content  # noqa: B018 (read the whole body)
        except requests.RequestException as exc:
            error = f"{type(exc).__name__} {target}"
        results.add(kind, time.perf_counter() - began, error)


def writer(url: str, bearer: str, template: Path, stop: threading.Event, results: Results) -> None:
    session = requests.Session()
    dataset = read(template)
    while not stop.is_set():
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        raw = part10(dataset)
        began = time.perf_counter()
        try:
            stored = stow(url, [raw], bearer, session)
            error = None if stored == [dataset.SOPInstanceUID] else f"acknowledged {stored}"
        except (RuntimeError, requests.RequestException) as exc:
            stored, error = [], str(exc)[:200]
        results.add("stow", time.perf_counter() - began, error)
        if error is None:
            digest = hashlib.sha256(raw).hexdigest()
            with results.lock:
                results.written[dataset.SOPInstanceUID] = (
                    dataset.StudyInstanceUID,
                    dataset.SeriesInstanceUID,
                    digest,
                )


def no_lost_writes(url: str, bearer: str, written: dict[str, tuple[str, str, str]]) -> dict:
    """Every acknowledged instance read back: the bytes stored are the bytes sent."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {bearer}", "Accept": DICOM})
    lost, changed = [], []
    for uid, (study, series, digest) in written.items():
        response = session.get(f"{url}/studies/{study}/series/{series}/instances/{uid}", timeout=60)
        if response.status_code != 200:
            lost.append(uid)
        elif hashlib.sha256(response.content).hexdigest() != digest:
            changed.append(uid)
    return {"acknowledged": len(written), "lost": lost, "changed": changed}


def verify(data: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "wsiarchive", "verify", "--json", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stdout)
    return {
        "exit_status": done.returncode,
        "instances": report["instances"],
        "findings": report["findings"],
    }


def frame_auth_cost(
    server: ArchiveServer, bearer: str, slide: Instance, seconds: float, rounds: int, script: Path
) -> dict:
    """wrk at 32 connections on random frames, alternately with a bearer token and anonymous."""
    prefix = f"{server.url}{slide.path}/frames/"
    bogus = requests.get(
        prefix + "1", headers={"Accept": FRAMES, "Authorization": "Bearer wsa_bogus"}, timeout=30
    )
    assert bogus.status_code == 401, "a token is checked even where anonymous access is allowed"
    runs: dict[str, list[dict]] = {"token": [], "anonymous": []}
    for _ in range(rounds):
        for mode, credential in (("token", bearer), ("anonymous", "")):
            run = wrk(prefix, slide.frames, 32, seconds, script, credential)
            runs[mode].append(run)
            print(f"  frames, {mode}: {run}", flush=True)
    summary = {
        mode: {
            "frames_per_s": statistics.median(r["frames_per_s"] for r in found),
            "p99_ms": statistics.median(r["p99_ms"] for r in found),
            "errors": sum(r["errors"] for r in found),
            "runs": found,
        }
        for mode, found in runs.items()
    }
    summary["throughput_ratio"] = (
        summary["token"]["frames_per_s"] / summary["anonymous"]["frames_per_s"]
    )
    return summary


def wrk(url: str, frames: int, clients: int, seconds: float, script: Path, bearer: str) -> dict:
    """frame_serving's wrk run, with the bearer token (or "") as the script's fourth argument."""

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
        urlsplit(url).path,
        str(frames),
        FRAMES,
        bearer,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {result.stdout[-1000:]} {result.stderr[-1000:]}")
    raw = json.loads(line[len("RESULT ") :])
    duration = raw["duration_us"] / 1e6
    return {
        "frames_per_s": (raw["requests"] - raw["non_2xx"]) / duration,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "requests": raw["requests"],
        "errors": raw["socket_errors"] + raw["non_2xx"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="of the mixed load")
    parser.add_argument("--frame-seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per mode")
    parser.add_argument("--workers", type=int, default=2)
    add_testdata_argument(parser)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsiarchive-load-auth"))
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "load_auth.json"
    )
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    data = args.workdir / "data"
    workers = str(args.workers)
    server = ArchiveServer(data, {"anonymous_access": "off", "workers": workers}).start()
    try:
        assert requests.get(server.url + "/studies", timeout=10).status_code == 401
        read_token, write_token = token(data, "readers", "read"), token(data, "writers", "write")
        slides = []
        for name in SLIDES:
            dataset = read(args.testdata / name)
            stow(server.url, [(args.testdata / name).read_bytes()], write_token, requests.Session())
            slides.append(
                Instance(
                    dataset.StudyInstanceUID,
                    dataset.SeriesInstanceUID,
                    dataset.SOPInstanceUID,
                    int(dataset.get("NumberOfFrames", 1)),
                )
            )
        print(f"mixed load: {READERS} readers, {WRITERS} writers, {args.seconds:.0f} s", flush=True)
        results, stop = Results(), threading.Event()
        threads = [
            threading.Thread(target=reader, args=(server.url, read_token, slides, stop, results, n))
            for n in range(READERS)
        ] + [
            threading.Thread(
                target=writer, args=(server.url, write_token, args.testdata / COPIED, stop, results)
            )
            for _ in range(WRITERS)
        ]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began
        load = results.summary(elapsed)
        for kind, figures in load.items():
            print(f"  {kind}: {figures}", flush=True)
        writes = no_lost_writes(server.url, read_token, results.written)
        print(
            f"  writes read back: {writes['acknowledged']} acknowledged, "
            f"{len(writes['lost'])} lost, {len(writes['changed'])} changed",
            flush=True,
        )
    finally:
        server.stop()
    checked = verify(data)
    print(f"  verify: {checked['instances']} instances, {len(checked['findings'])} findings")
    script = args.workdir / "frames_auth.lua"
    script.write_text(AUTH_WRK_SCRIPT)
    server = ArchiveServer(data, {"anonymous_access": "loopback", "workers": workers}).start()
    try:
        frame_slide = next(s for s, n in zip(slides, SLIDES, strict=True) if n == FRAME_SLIDE)
        auth = frame_auth_cost(
            server, read_token, frame_slide, args.frame_seconds, args.rounds, script
        )
    finally:
        server.stop()
    print(f"  bearer token / anonymous frames/s: {auth['throughput_ratio']:.3f}")
    report = {
        "machine": {"cpus": os.cpu_count()},
        "server_workers": args.workers,
        "readers": READERS,
        "writers": WRITERS,
        "seconds": elapsed,
        "load": load,
        "writes": {**writes, "lost": len(writes["lost"]), "changed": len(writes["changed"])},
        "verify": checked,
        "frame_auth_cost": auth,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    errors = sum(k["errors"] for k in load.values())
    ok = errors == 0 and not writes["lost"] and not writes["changed"]
    ok = ok and checked["exit_status"] == 0 and not checked["findings"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
