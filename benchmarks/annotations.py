"""A bulk annotation of many nuclei polygons (Sup 222, made with highdicom) through the archive:
STOW time, WADO-RS metadata size and time, bulk data time (whole and by Range), and how the
bulk data value is found (walking element headers vs parsing the data set). With --browser,
also how long after one Chromium saves drawn ROIs (web/src/annotations, 2 s QIDO poll) a
second one on the same slide shows them.

    .venv/bin/python benchmarks/annotations.py [--nuclei 100000] [--sides 8] [--repeats 20]
        [--browser]
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pydicom
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.peers import Ours, add_testdata_argument  # noqa: E402
from benchmarks.stow_frames import stow  # noqa: E402
from storage.blobs import FilesystemBlobStore  # noqa: E402
from storage.retrieve.bulkdata import header_element  # noqa: E402
from storage.retrieve.locate import locate  # noqa: E402
from tests.annotations import nuclei_annotations, with_patient  # noqa: E402

OCTETS = {"Accept": "application/octet-stream"}
POINTS_PATH = [0x006A0002, "0", 0x00660016]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _timed(repeats: int, call) -> dict:  # type: ignore[no-untyped-def]
    """Median and best seconds of *repeats* calls; the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "best_s": min(times), "result": result}


def live_sharing(root: str, template: pydicom.Dataset, rounds: int) -> dict:
    """Seconds from browser A's save() to browser B showing the ROIs, *rounds* times."""
    from dicomweb_client import DICOMwebClient
    from playwright.sync_api import sync_playwright

    from tests.annotations import fresh_copy
    from tests.chromium import CHROMIUM, FLAGS
    from tests.system.test_annotations_browser import _draw_polygon_and_rectangle, _open

    subprocess.run(["node", "tests/browser/build.mjs"], check=True, timeout=120)
    slide = fresh_copy(template)
    DICOMwebClient(root).store_instances([slide])
    server = SimpleNamespace(url=root)
    seen, saves = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            size = {"width": 1100, "height": 900}
            a = _open(browser.new_context(viewport=size), server, slide, poll=2000)
            b = _open(browser.new_context(viewport=size), server, slide, poll=2000)
            for _ in range(max(1, rounds)):
                _draw_polygon_and_rectangle(a)
                count = a.evaluate("window.viewer.getAllROIs().length")
                start = time.perf_counter()
                a.evaluate("window.annotations.save()")
                saves.append(time.perf_counter() - start)
                b.wait_for_function(f"window.viewer.getAllROIs().length === {count}")
                seen.append(time.perf_counter() - start)
        finally:
            browser.close()
    return {
        "poll_ms": 2000,
        "save_median_s": statistics.median(saves),
        "seen_by_other_median_s": statistics.median(seen),
        "seen_by_other_max_s": max(seen),
        "rounds": len(seen),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nuclei", type=int, default=100_000)
    parser.add_argument("--sides", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--browser", action="store_true", help="measure live sharing too")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/annotations.json"))
    add_testdata_argument(parser)
    args = parser.parse_args()

    slide = with_patient(pydicom.dcmread(args.testdata / "dicom" / "wsi2dcm_jpeg.dcm"))
    start = time.perf_counter()
    ann = nuclei_annotations(slide, args.nuclei, args.sides)
    built = time.perf_counter() - start
    results: dict = {"nuclei": args.nuclei, "sides": args.sides, "highdicom_build_s": built}
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        path = work / "ann.dcm"
        ann.save_as(path)
        results["file_bytes"] = path.stat().st_size
        expected = pydicom.dcmread(path).AnnotationGroupSequence[0].PointCoordinatesData
        results["point_coordinates_bytes"] = len(expected)

        # In process: find the value by walking headers (now) vs parsing the data set (before).
        store = FilesystemBlobStore(work / "blobs", False)
        key = "ann"
        (work / "blobs").mkdir(exist_ok=True)
        target = store.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())

        def walk():  # type: ignore[no-untyped-def]
            with store.open(key) as fp:
                return locate(fp, POINTS_PATH, str(ann.file_meta.TransferSyntaxUID))

        walked = _timed(args.repeats, walk)
        parsed = _timed(max(3, args.repeats // 4), lambda: header_element(store, key, POINTS_PATH))
        results["locate_by_header_walk"] = {k: v for k, v in walked.items() if k != "result"}
        results["locate_by_parsing_data_set"] = {k: v for k, v in parsed.items() if k != "result"}

        server = Ours(work / "server", _port())
        try:
            _, seconds = stow(server.root, path)
            results["stow_s"] = seconds
            results["stow_mb_per_s"] = path.stat().st_size / seconds / 1e6
            base = (
                f"{server.root}/studies/{ann.StudyInstanceUID}/series/{ann.SeriesInstanceUID}"
                f"/instances/{ann.SOPInstanceUID}"
            )
            session = requests.Session()
            plain = {"Accept-Encoding": "identity"}
            meta = _timed(args.repeats, lambda: session.get(base + "/metadata", headers=plain))
            body = meta.pop("result").content
            zipped = session.get(
                base + "/metadata", headers={"Accept-Encoding": "gzip"}, stream=True
            )
            results["metadata"] = {
                **meta,
                "bytes": len(body),
                "gzip_bytes": len(zipped.raw.read()),
                "gzip_bytes_local": len(gzip.compress(body)),
            }
            uri = json.loads(body)[0]["006A0002"]["Value"][0]["00660016"]["BulkDataURI"]
            whole = _timed(args.repeats, lambda: session.get(uri, headers=OCTETS))
            assert whole.pop("result").content == expected
            whole["mb_per_s"] = len(expected) / whole["median_s"] / 1e6
            results["bulkdata_whole"] = whole
            middle = len(expected) // 2
            ranged_headers = {**OCTETS, "Range": f"bytes={middle}-{middle + 4095}"}
            ranged = _timed(args.repeats, lambda: session.get(uri, headers=ranged_headers))
            response = ranged.pop("result")
            assert response.status_code == 206
            assert response.content == expected[middle : middle + 4096]
            results["bulkdata_range_4k"] = ranged
            multipart = {"Accept": 'multipart/related; type="application/octet-stream"'}
            parts = _timed(args.repeats, lambda: session.get(uri, headers=multipart))
            assert expected in parts.pop("result").content
            results["bulkdata_multipart"] = parts
            instance = _timed(
                max(3, args.repeats // 4),
                lambda: session.get(
                    base, headers={"Accept": "multipart/related; type=application/dicom"}
                ),
            )
            results["whole_instance_for_comparison"] = {
                **{k: v for k, v in instance.items() if k != "result"},
                "bytes": len(instance["result"].content),
            }
            if args.browser:
                results["live_sharing"] = live_sharing(server.root, slide, args.repeats // 4)
        finally:
            server.stop()
    results["environment"] = {"cpus_shared": True, "server_workers": 2, "loopback": True}
    text = json.dumps(results, indent=2)
    args.output.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
