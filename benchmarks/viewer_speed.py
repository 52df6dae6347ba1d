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
from pathlib import Path
from typing import Any

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.convert import METADATA  # noqa: E402
from benchmarks.peers import Orthanc, Ours, Peer, add_testdata_argument  # noqa: E402
from benchmarks.stow_frames import stow  # noqa: E402
from benchmarks.viewer import (  # noqa: E402
    CHROMIUM,
    HOME,
    NO_CORS,
    certificate,
    frame_responses,
    page_site,
    trusted_flags,
    visit,
)

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
            "frame_errors": sum(r["status"] >= 400 for r in frames) + sum(
                len(s["errors"]) for s in steps
            ),
            "protocols": sorted({r["protocol"] for r in frames}),
        }
        if step != "pan":
            out[step]["metadata_ms_p50"] = p50([s["metadata_ms"] for s in steps])
            out[step]["metadata_status"] = sorted(
                {r["status"] for s in steps for r in s["responses"] if "/metadata" in r["url"]}
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="cold visits per server")
    parser.add_argument("--slide", default=SLIDE, help="in the test data")
    parser.add_argument("--workers", type=int, default=2, help="our server's processes")
    parser.add_argument("--no-orthanc", action="store_true")
    add_testdata_argument(parser)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsiarchive-viewer-bench"))
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "viewer_speed.json"
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.workdir.mkdir(parents=True, exist_ok=True)
    files = convert(args.testdata / args.slide, args.workdir / "slide")
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    study, series = first.StudyInstanceUID, first.SeriesInstanceUID
    cert, key = certificate(args.workdir)
    tls = {"https_certificate": str(cert), "https_key": str(key)}
    peers: dict[str, Peer] = {}
    try:
        for name, port, version in (("wsiarchive-http1", 18481, "1"), ("wsiarchive-http2", 18482, "auto")):
            peer = Ours(
                args.workdir / name, port, workers=args.workers, name=name,
                settings={**tls, "http_version": version},
            )  # fmt: skip
            peers[name] = peer
        if not args.no_orthanc and Orthanc.available():
            peers["orthanc"] = Orthanc(args.workdir / "orthanc", 18483, 14283)
        for name, peer in peers.items():
            for path in files:
                stow(peer.root, path)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in peers}
        with page_site(args.workdir / "site") as page, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=trusted_flags(cert) + NO_CORS)
            try:
                for name, peer in peers.items():  # a warm-up visit each, not counted
                    visit(browser, page, peer.root, study, series, revisit=False)
                for number in range(args.runs):
                    for name, peer in peers.items():
                        run = visit(browser, page, peer.root, study, series)
                        for step in run.values():
                            step.pop("frames", None)
                        runs[name].append(run)
                        line = {s: round(run[s]["full_ms"]) for s in STEPS}
                        print(f"run {number + 1} {name}: {line}", flush=True)
            finally:
                browser.close()
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
            "emulation": "DevTools Network.emulateNetworkConditions: latency per request, "
            "not per connection (handshakes cost no extra round trip)",
        },
        "runs": args.runs,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "servers": {name: summary(r) for name, r in runs.items()},
        "goal": {"full_ms": GOAL_MS, "ratio_to_orthanc": GOAL_RATIO},
    }
    if "orthanc" in runs:
        theirs = results["servers"]["orthanc"]
        for name in ("wsiarchive-http1", "wsiarchive-http2"):
            ours = results["servers"][name]
            for step in STEPS:
                for what in ("full_ms_p50", "frames_ms_p50"):
                    if ours[step][what] and theirs[step][what]:
                        ratio = theirs[step][what] / ours[step][what]
                        results.setdefault("orthanc_over_ours", {})[
                            f"{name}/{step}/{what}"
                        ] = round(ratio, 2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["servers"], indent=2))
    print(json.dumps(results.get("orthanc_over_ours"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
