"""A short run of benchmarks/viewer_speed.py as a regression guard: dicom-microscopy-viewer on
a page of another origin (real CORS, no switches) opens a real slide from the archive over
HTTPS in Debian's Chromium, throttled to 40 ms and 50 Mbit/s, at the base level of a
1920x1080 viewport: the viewport is fully drawn, every frame request is answered 200 over
HTTP/2, a pan draws the next viewport, and a second visit takes the frames from the browser's
cache. The bound is generous (a 2-core CI machine); the benchmark has the tight figures."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from benchmarks.convert import METADATA
from benchmarks.stow_frames import stow
from benchmarks.viewer import (
    certificate,
    frame_responses,
    page_site,
    trusted_flags,
    visit,
)
from tests.chromium import CHROMIUM

SLIDE = "ndpi/test3-DAPI-2-(387).ndpi"  # JPEG tiles, base 3968 x 4864
BOUND_MS = 30_000  # generous: the benchmark's goal is 1,500


@pytest.fixture(scope="module")
def slide(tmp_path_factory, testdata) -> list[Path]:
    output = tmp_path_factory.mktemp("viewer-slide")
    command = [sys.executable, "-m", "wsiarchive", "convert", str(testdata / SLIDE)]
    subprocess.run([*command, "-o", str(output), *METADATA], check=True, capture_output=True)
    return sorted(output.glob("*/*.dcm"))


def test_the_viewer_draws_a_slide_over_http2(fresh_server, slide, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    cert, key = certificate(tmp_path)
    with page_site(tmp_path / "site") as page_url:
        origin = page_url.rsplit("/", 1)[0]
        server = fresh_server(
            https_certificate=str(cert), https_key=str(key), cors_origins=origin, workers=1
        )
        for path in slide:
            stow(server.url, path)
        first = pydicom.dcmread(slide[0], stop_before_pixels=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=trusted_flags(cert))
            try:
                run, shot = _visit(browser, page_url, server.url, first)
            finally:
                browser.close()
    opened, pan, revisit = run["open"], run["pan"], run["revisit"]
    for step in (opened, pan):
        frames = frame_responses(step)
        assert step["full_ms"] < BOUND_MS, step["full_ms"]
        assert not step["errors"], step["errors"]
        # Every tile of the viewport was asked for, and every answer was a 200 over h2.
        assert len(frames) >= step["visible_base_tiles"] >= 6, (len(frames), step)
        assert {(r["status"], r["protocol"]) for r in frames} == {(200, "h2")}, frames
    assert opened["visible_base_tiles"] <= 20  # the base level: 496-pixel tiles, 1920x1080
    # The second visit: frames from the browser's cache (max-age), metadata revalidated.
    cached = frame_responses(revisit)
    assert cached and all(r["cached"] for r in cached), cached
    # DevTools reports a revalidated response with the cached one's status (200); what
    # came over the line was a 304's headers, against the whole (gzipped) metadata before.
    metadata = [_metadata(step) for step in (opened, revisit)]
    assert metadata[0]["headers"]["etag"] == metadata[1]["headers"]["etag"]
    assert metadata[1]["bytes"] < 500 < metadata[0]["bytes"], metadata
    # The canvas is drawn: the slide's fluorescence, not one flat colour.
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=float)
    assert pixels.std() > 5, pixels.std()


def _metadata(step: dict) -> dict:
    (found,) = [r for r in step["responses"] if r["url"].endswith("/metadata")]
    return found


def _visit(browser, page_url: str, root: str, first) -> tuple[dict, bytes]:  # type: ignore[no-untyped-def]
    run = visit(browser, page_url, root, first.StudyInstanceUID, first.SeriesInstanceUID)
    # A screenshot of a last visit, drawn (visit closes its context).
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    try:
        page = context.new_page()
        page.goto(page_url)
        page.evaluate(
            "([r, s, e]) => openSlide(r, s, e)",
            [root, first.StudyInstanceUID, first.SeriesInstanceUID],
        )
        shot = page.screenshot()
    finally:
        context.close()
    return run, shot
