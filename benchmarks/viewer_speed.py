"""What a pathologist at home feels: dicom-microscopy-viewer in headless Chromium, throttled to
40 ms RTT and 50 Mbit/s, opening a real slide at its base level in a 1920x1080 viewport, and
panning one viewport width; from wsiarchive (HTTP/1.1 and HTTP/2, both over TLS) and from
Orthanc + DICOMweb (HTTP/1.1), the same DICOM, the same page, the same run.

Every run is a new browser context (a cold cache, new connections); the servers take turns
run by run. Reported per server and step, as p50 over the runs: ``full_ms``, from opening the
slide (the series metadata request) to the map's rendercomplete with the view at the base
level (every tile of the viewport loaded, decoded and drawn), and ``frames_ms``, to the end of
the last frame response (what the server and network decide; the rest is the browser's
decoding and drawing). ``revisit`` opens the slide again in a second tab of the same
context: the browser's cache is warm.

DevTools throttling (Network.emulateNetworkConditions) delays each request, not each
connection: TCP and TLS handshakes cost no extra round trip, so HTTP/1.1's six connections
are cheaper here than on a real line, and HTTP/2's gain is understated.

    .venv/bin/python benchmarks/viewer_speed.py [--runs 7] [--slide ndpi/test3-DAPI-2-(387).ndpi]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.convert import METADATA  # noqa: E402
from benchmarks.peers import Orthanc, Ours, Peer, add_testdata_argument  # noqa: E402
from benchmarks.stow_frames import stow  # noqa: E402
from benchmarks.viewer import (  # noqa: E402
    HOME,
    NO_CORS,
    certificate,
    frame_responses,
    page_site,
    trusted_flags,
    visit,
)
from benchmarks.wan import home_line  # noqa: E402
from tests.chromium import CHROMIUM  # noqa: E402

SLIDE = "ndpi/test3-DAPI-2-(387).ndpi"  # JPEG tiles, base 3968 x 4864: two viewports wide
GOAL_MS = 1500
GOAL_RATIO = 2.0
STEPS = ("open", "pan", "revisit")


def convert(slide: Path, output: Path) -> list[Path]:
    """The slide as DICOM (once; kept in *output*)."""
    files = sorted(output.glob("*/*.dcm"))
    if files:
        return files
    shutil.rmtree(output, ignore_errors=True)
    command = [sys.executable, "-m", "wsiarchive", "convert", str(slide), "-o", str(output)]
    subprocess.run([*command, *METADATA, "--mpp", "0.5"], check=True, capture_output=True)
    return sorted(output.glob("*/*.dcm"))


def p50(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for step in STEPS:
        steps = [run[step] for run in runs]
        frames = [r for s in steps for r in frame_responses(s)]
        out[step] = {
            "full_ms_p50": p50([s["full_ms"] for s in steps]),
            "frames_ms_p50": p50([s["frames_ms"] for s in steps]),
            "full_ms": [round(s["full_ms"]) for s in steps],
            "visible_base_tiles": steps[0]["visible_base_tiles"],
            "frame_responses": len(frames) / len(steps),
            "frames_from_cache": sum(r["cached"] for r in frames) / len(steps),
            "frame_errors": sum(r["status"] >= 400 for r in frames)
            + sum(len(s["errors"]) for s in steps),
            "protocols": sorted({r["protocol"] for r in frames}),
        }
        if step != "pan":
            out[step]["metadata_ms_p50"] = p50([s["metadata_ms"] for s in steps])
            # Bytes over the line (DevTools' encodedDataLength: headers and gzipped body).
            out[step]["metadata_bytes"] = p50(
                [r["bytes"] for s in steps for r in s["responses"] if "/metadata" in r["url"]]
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="cold visits per server")
    parser.add_argument("--slide", default=SLIDE, help="in the test data")
    parser.add_argument("--workers", type=int, default=2, help="our server's processes")
    parser.add_argument("--no-orthanc", action="store_true")
    parser.add_argument(
        "--line", choices=("devtools", "proxy", "both"), default="both",
        help="the throttling: DevTools (per request), the proxy (per connection), or both",
    )  # fmt: skip
    add_testdata_argument(parser)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsiarchive-viewer-bench"))
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "viewer_speed.json"
    )
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    files = convert(args.testdata / args.slide, args.workdir / "slide")
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    study, series = first.StudyInstanceUID, first.SeriesInstanceUID
    cert, key = certificate(args.workdir)
    tls = {"https_certificate": str(cert), "https_key": str(key)}
    ports = {"wsiarchive-http1": 18481, "wsiarchive-http2": 18482, "orthanc": 18483}
    if args.no_orthanc or not Orthanc.available():
        del ports["orthanc"]
    lines = ("devtools", "proxy") if args.line == "both" else (args.line,)
    peers: dict[str, Peer] = {}
    with ExitStack() as stack:
        proxied = {name: stack.enter_context(home_line(port)) for name, port in ports.items()}
        try:
            for name, version in (("wsiarchive-http1", "1"), ("wsiarchive-http2", "auto")):
                # allowed_hosts: the BulkDataURIs (ICC profiles) name the proxy when asked
                # through it.
                settings = {
                    **tls,
                    "http_version": version,
                    "allowed_hosts": f"127.0.0.1:{proxied[name]}",
                }
                peers[name] = Ours(
                    args.workdir / name, ports[name], workers=args.workers, name=name,
                    settings=settings,
                )  # fmt: skip
            if "orthanc" in ports:
                peers["orthanc"] = Orthanc(args.workdir / "orthanc", ports["orthanc"], 14283)
            for peer in peers.values():
                for path in files:
                    stow(peer.root, path)
            runs = measure(args, peers, proxied, lines, cert, study, series)
        finally:
            for peer in peers.values():
                peer.stop()
    results: dict[str, Any] = {
        "slide": args.slide,
        "levels": len(files),
        "viewport": "1920x1080",
        "network": {
            "latency_ms": HOME.latency_ms,
            "down_mbit": HOME.down_mbit,
            "up_mbit": HOME.up_mbit,
            "devtools": "Network.emulateNetworkConditions: latency per request, not per "
            "connection (handshakes cost no extra round trip)",
            "proxy": "benchmarks/wan.py: a TCP proxy, half the RTT each way on every byte, "
            "one RTT per new connection, one shared 50 Mbit/s link each way",
        },
        "runs": args.runs,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "goal": {"full_ms": GOAL_MS, "ratio_to_orthanc": GOAL_RATIO},
        "lines": {},
    }
    for line in lines:
        servers = {name: summary(r) for name, r in runs[line].items()}
        entry: dict[str, Any] = {"servers": servers}
        if "orthanc" in servers:
            theirs = servers["orthanc"]
            for name in ("wsiarchive-http1", "wsiarchive-http2"):
                for step in STEPS:
                    for what in ("full_ms_p50", "frames_ms_p50"):
                        mine, other = servers[name][step][what], theirs[step][what]
                        if mine and other:
                            entry.setdefault("orthanc_over_ours", {})[f"{name}/{step}/{what}"] = (
                                round(other / mine, 2)
                            )
        results["lines"][line] = entry
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    for line, entry in results["lines"].items():
        for name, server in entry["servers"].items():
            figures = {st: (server[st]["full_ms_p50"], server[st]["frames_ms_p50"]) for st in STEPS}
            print(f"{line} {name} (full, frames) p50 ms: {figures}")
        print(f"{line} orthanc/ours: {entry.get('orthanc_over_ours')}")
    return 0


def measure(
    args: argparse.Namespace,
    peers: dict[str, Peer],
    proxied: dict[str, int],
    lines: tuple[str, ...],
    cert: Path,
    study: str,
    series: str,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every (line, server) pair in turn, run by run, after one uncounted warm-up visit each."""
    from playwright.sync_api import sync_playwright

    def root(line: str, name: str) -> str:
        peer = peers[name]
        if line == "devtools":
            return peer.root
        port = peer.root.split(":")[2].split("/")[0]
        return peer.root.replace(f":{port}/", f":{proxied[name]}/")

    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        line: {name: [] for name in peers} for line in lines
    }
    with page_site(args.workdir / "site") as page, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=trusted_flags(cert) + NO_CORS
        )
        try:
            for line in lines:
                for name in peers:
                    network = HOME if line == "devtools" else None
                    visit(browser, page, root(line, name), study, series, network, revisit=False)
            for number in range(args.runs):
                for line in lines:
                    for name in peers:
                        network = HOME if line == "devtools" else None
                        run = visit(browser, page, root(line, name), study, series, network)
                        for step in run.values():
                            step.pop("frames", None)
                        runs[line][name].append(run)
                        figures = {s: round(run[s]["full_ms"]) for s in STEPS}
                        print(f"run {number + 1} {line} {name}: {figures}", flush=True)
        finally:
            browser.close()
    return runs


if __name__ == "__main__":
    sys.exit(main())
