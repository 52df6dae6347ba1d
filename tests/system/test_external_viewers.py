"""External browser viewers, unchanged, against a real archive from another origin: OHIF 3's
prebuilt app (its stock DICOMweb data source, web/ohif/app-config.js) and a page of
dicom-microscopy-viewer (Slim's engine, web/external/dmv), each on a loopback origin of its
own, in Debian's Chromium. Every request the browser makes is recorded: none may fail, none
may be refused by CORS, and what is drawn is compared with the archive's /rendered output and
with pydicom's reading of the X-ray."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image

from converter import ConversionOptions, SlideInfo, convert
from tests.chromium import CHROMIUM, FLAGS, artifacts_folder
from tests.servers import ArchiveServer
from tests.viewerhost import NODE_MODULES, OHIF_DIST, WEB, ViewerHost, part10

SLIDE = "svs/CMU-1-Small-Region.svs"
XRAY = "radiology/fodicom_CR-MONO1-10-chest.nopreamble"
INFO = SlideInfo(
    patient_id="P-VIEWERS",
    patient_name="Doe^Jane",
    accession_number="ACC-VIEW",
    container_identifier="SLIDE-VIEW",
    anatomy="SCT:39607008:Lung structure",
    stains=["hematoxylin stain", "water soluble eosin stain"],
)
VIEWPORT = {"width": 1280, "height": 900}
CONFIG_ROOT = "http://127.0.0.1:8080/dicomweb"  # the root written in web/ohif/app-config.js


@dataclass(frozen=True)
class Slide:
    study: str
    series: str
    base: str  # the SOP Instance UID of the base level
    columns: int
    rows: int
    orientation: tuple[float, ...]  # ImageOrientationSlide


@dataclass
class Site:
    archive: ArchiveServer
    ohif: ViewerHost
    dmv: ViewerHost
    slide: Slide
    xray: pydicom.Dataset


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    return artifacts_folder(tmp_path_factory)


def _slide_files(testdata: Path, out: Path) -> tuple[list[Path], Slide]:
    """The slide converted to WG-26 DICOM as `import` converts it. (OHIF 3.13's bundled
    dicom-microscopy-viewer puts a THUMBNAIL into the pyramid and refused this SVS's, 574 x 768,
    a zoom factor of 3.87 rounded to 4 beside the 555 x 742 level: the converter leaves such a
    thumbnail out.)"""
    files = convert(testdata / SLIDE, out, INFO, ConversionOptions(workers=2))
    kept, volumes = [], []
    for path in files:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        kept.append(path)
        if dataset.ImageType[2] == "VOLUME":
            volumes.append(dataset)
    base = max(volumes, key=lambda d: int(d.TotalPixelMatrixColumns))
    return kept, Slide(
        base.StudyInstanceUID,
        base.SeriesInstanceUID,
        base.SOPInstanceUID,
        int(base.TotalPixelMatrixColumns),
        int(base.TotalPixelMatrixRows),
        tuple(float(v) + 0.0 for v in base.ImageOrientationSlide),
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory, testdata) -> Iterator[Site]:
    if not (OHIF_DIST / "index.html").is_file():
        pytest.fail("OHIF's prebuilt app is missing: run ./scripts/setup.sh --test")
    files, slide = _slide_files(testdata, tmp_path_factory.mktemp("slide"))
    ohif = ViewerHost({"/": OHIF_DIST})
    dmv = ViewerHost(
        {
            "/": WEB / "external" / "dmv",
            "/dicomweb-client": NODE_MODULES / "dicomweb-client" / "build",
            "/dicom-microscopy-viewer": NODE_MODULES / "dicom-microscopy-viewer" / "dist",
        },
        fallback=None,
    )
    archive = ArchiveServer(
        tmp_path_factory.mktemp("viewers") / "data",
        {"cors_origins": f"{ohif.origin}, {dmv.origin}"},
    ).start()
    try:
        for path in files:
            archive.store([path.read_bytes()])
        xray_bytes = part10(testdata / XRAY)
        archive.store([xray_bytes])
        xray = pydicom.dcmread(io.BytesIO(xray_bytes))
        config = (WEB / "ohif" / "app-config.js").read_text()
        assert CONFIG_ROOT in config
        ohif.overrides["/app-config.js"] = config.replace(CONFIG_ROOT, archive.url).encode()
        with ohif.running(), dmv.running():
            yield Site(archive, ohif, dmv, slide, xray)
    finally:
        archive.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class Recorder:
    """Every response, failed request and console message of a page."""

    responses: list[tuple[str, int, str]] = field(default_factory=list)  # method, status, url
    failed: list[tuple[str, str]] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)

    page: object = None

    def attach(self, page) -> Recorder:
        self.page = page
        page.on("request", lambda r: self.requested.append(r.url))
        page.on("response", lambda r: self.responses.append((r.request.method, r.status, r.url)))
        page.on("requestfailed", lambda r: self.failed.append((r.url, r.failure or "")))
        page.on("console", lambda m: self.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.console.append(("pageerror", str(e))))
        return self

    def requested_matching(self, predicate: Callable[[str], bool]) -> list[str]:
        return [url for url in self.requested if predicate(url)]

    def matching(self, predicate: Callable[[str], bool]) -> list[tuple[str, int, str]]:
        return [r for r in self.responses if predicate(r[2])]

    def settle(self, predicate: Callable[[str], bool], at_least: int, timeout: float = 90):
        """Wait until at least *at_least* matching responses came and no new one for a
        second and a half (the tiles of a view are all in)."""
        deadline = time.monotonic() + timeout
        seen, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            count = len(self.matching(predicate))
            if count != seen:
                seen, since = count, time.monotonic()
            elif count >= at_least and time.monotonic() - since > 1.5:
                return count
            # Playwright's sync API delivers the page's events only while it runs: wait in it.
            self.page.wait_for_timeout(100)  # type: ignore[attr-defined]
        asked = self.requested_matching(predicate)
        raise AssertionError(
            f"{seen} matching responses after {timeout} s, {at_least} wanted; "
            f"{len(asked)} requested; last requests {self.requested[-6:]}; "
            f"console: {self.console[-10:]}"
        )

    def assert_clean(self) -> None:
        """No request failed (a CORS refusal is a failed request in the browser), no response
        was an error, and the console reports no cross-origin refusal."""
        assert self.failed == [], self.failed
        errors = [r for r in self.responses if r[1] >= 400]
        assert errors == [], errors
        refusals = [
            text
            for kind, text in self.console
            if "CORS" in text or "Access-Control" in text or "blocked by" in text
        ]
        assert refusals == [], refusals
        crashes = [text for kind, text in self.console if kind == "pageerror"]
        assert crashes == [], crashes


def _frames(url: str) -> bool:
    return "/dicomweb/" in url and "/frames/" in url


def _screenshot(target, path: Path) -> np.ndarray:
    target.screenshot(path=str(path))
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float64)


def _not_blank(pixels: np.ndarray) -> None:
    grey = pixels.mean(axis=2)
    assert grey.std() > 20, "the canvas is blank"
    assert len(np.unique(grey.round())) > 64, "the canvas has too few levels to be an image"


def _similar(drawn: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference and correlation of two greyscale images of one size."""
    a, b = drawn.mean(axis=2), expected.mean(axis=2)
    return float(np.abs(a - b).mean()), float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _new_page(browser, recorder: Recorder):
    """A page in a context of its own: nothing cached from another test. OHIF registers a
    service worker, whose fetches the page's network events would not show: blocked, so that
    every request is recorded (OHIF works without it)."""
    context = browser.new_context(viewport=VIEWPORT, service_workers="block")
    page = context.new_page()
    page.on("close", lambda _: context.close())
    recorder.attach(page)
    return page


def _dismiss_notices(page) -> None:
    """OHIF's first-visit notices (investigational use, the tour) cover the viewport."""
    for label in ("Confirm and hide", "Skip all"):
        button = page.get_by_text(label)
        if button.count():
            button.first.click()
    page.wait_for_timeout(300)


def _zoom_and_pan(page, recorder: Recorder, box: dict[str, float], button: str = "left") -> None:
    """Zoom in twice at the centre with the wheel, then drag towards the lower right until
    the view needs tiles not loaded yet (with *button*: OHIF pans with the middle one): new
    frames must be asked for and all answered."""
    before = len(recorder.matching(_frames))
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    for _ in range(2):
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(400)
    zoomed = recorder.settle(_frames, before + 1)
    for _ in range(8):  # until the view reaches tiles not loaded yet
        page.mouse.move(x + box["width"] / 4, y + box["height"] / 4)
        page.mouse.down(button=button)
        page.mouse.move(x - box["width"] / 4, y - box["height"] / 4, steps=12)
        page.mouse.up(button=button)
        page.wait_for_timeout(500)
        if len(recorder.requested_matching(_frames)) > zoomed:
            break
    panned = recorder.settle(_frames, zoomed + 1)
    assert panned > zoomed > before


# -- OHIF 3 ----------------------------------------------------------------------------------------
def test_ohif_study_list_shows_the_stored_studies(site, browser, artifacts) -> None:
    recorder = Recorder()
    page = _new_page(browser, recorder)
    try:
        page.goto(site.ohif.origin + "/")
        page.get_by_text("Doe, Jane").first.wait_for(timeout=60000)
        page.get_by_text("Anonymized").first.wait_for()
        rows = page.locator("tbody tr").filter(has_text="No Description")
        texts = sorted(rows.all_inner_texts())
        assert len(texts) == 2, texts
        assert "Anonymized" in texts[0] and "CR" in texts[0]
        assert "Doe, Jane" in texts[1] and "SM" in texts[1]
        _screenshot(page, artifacts / "ohif-study-list.png")
        searches = recorder.matching(lambda url: "/dicomweb/studies?" in url)
        assert searches and all(status == 200 for _, status, _ in searches)
        recorder.assert_clean()
    finally:
        page.close()


def test_ohif_viewer_draws_the_xray(site, browser, artifacts) -> None:
    recorder = Recorder()
    page = _new_page(browser, recorder)
    try:
        page.goto(f"{site.ohif.origin}/viewer?StudyInstanceUIDs={site.xray.StudyInstanceUID}")
        recorder.settle(_frames, 1)
        canvas = page.locator(".cornerstone-canvas").first
        canvas.wait_for()
        _dismiss_notices(page)
        page.wait_for_timeout(1500)
        drawn = _screenshot(canvas, artifacts / "ohif-xray.png")
        _not_blank(drawn)
        # The X-ray as pydicom reads it: MONOCHROME1 (white is 0), square, fitted into the
        # viewport's shorter side, centred; grey.
        height, width = drawn.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        inset = side // 10
        crop = drawn[top + inset : top + side - inset, left + inset : left + side - inset]
        pixels = site.xray.pixel_array.astype(np.float64)
        pixels = (pixels.max() - pixels) / (pixels.max() - pixels.min()) * 255
        reference = Image.fromarray(pixels.astype(np.uint8)).resize((side, side))
        expected = np.asarray(reference.convert("RGB")).astype(np.float64)
        expected = expected[inset : side - inset, inset : side - inset]
        assert np.abs(crop[..., 0] - crop[..., 2]).mean() < 2
        _, correlation = _similar(crop, expected)
        assert correlation > 0.9, correlation
        recorder.assert_clean()
    finally:
        page.close()


def test_ohif_microscopy_mode_draws_the_slide(site, browser, artifacts) -> None:
    recorder = Recorder()
    page = _new_page(browser, recorder)
    try:
        page.goto(f"{site.ohif.origin}/microscopy?StudyInstanceUIDs={site.slide.study}")
        recorder.settle(_frames, 4)
        viewport = page.locator(".ol-viewport").first
        viewport.wait_for()
        _dismiss_notices(page)
        drawn = _screenshot(viewport, artifacts / "ohif-microscopy.png")
        _not_blank(drawn)
        # Haematoxylin and eosin: where there is tissue (darker than the glass, lighter than
        # the black around the slide), red and blue outweigh green.
        grey = drawn.mean(axis=2)
        tissue = drawn[(grey > 40) & (grey < 200)]
        assert len(tissue) > 10000
        assert tissue[:, 0].mean() > tissue[:, 1].mean() + 20
        assert tissue[:, 2].mean() > tissue[:, 1].mean() + 20
        box = viewport.bounding_box()
        assert box is not None
        _zoom_and_pan(page, recorder, box, button="middle")
        _screenshot(viewport, artifacts / "ohif-microscopy-zoomed.png")
        recorder.assert_clean()
    finally:
        page.close()


# -- dicom-microscopy-viewer -----------------------------------------------------------------------
def test_dicom_microscopy_viewer_draws_the_slide_as_rendered(site, browser, artifacts) -> None:
    recorder = Recorder()
    page = _new_page(browser, recorder)
    slide = site.slide
    try:
        page.goto(
            f"{site.dmv.origin}/index.html?url={site.archive.url}"
            f"&study={slide.study}&series={slide.series}"
        )
        page.wait_for_function("document.body.dataset.state !== undefined")
        assert page.evaluate("document.body.dataset.state") == "rendered"
        recorder.settle(_frames, 4)
        page.wait_for_timeout(1000)
        drawn = _screenshot(page, artifacts / "dmv.png")
        _not_blank(drawn)
        # The whole slide is fitted to the viewport: compare the middle of it with the
        # archive's own rendering of the base level at that size.
        scale = min(VIEWPORT["width"] / slide.columns, VIEWPORT["height"] / slide.rows)
        width, height = round(slide.columns * scale), round(slide.rows * scale)
        left, top = (VIEWPORT["width"] - width) // 2, (VIEWPORT["height"] - height) // 2
        rendered = requests.get(
            f"{site.archive.url}/studies/{slide.study}/series/{slide.series}"
            f"/instances/{slide.base}/rendered",
            params={"viewport": f"{width},{height}"},
            headers={"Accept": "image/png"},
            timeout=60,
        )
        assert rendered.status_code == 200
        (artifacts / "dmv-expected.png").write_bytes(rendered.content)
        expected = Image.open(io.BytesIO(rendered.content)).convert("RGB")
        expected = np.asarray(expected.resize((width, height))).astype(np.float64)
        # The viewer lays the total pixel matrix out in the slide coordinate system, slide Y
        # to the right and X downwards: with the converter's orientation (rows along -Y,
        # columns along -X; PS3.3 C.8.12.4.1.4) that is the matrix turned by 180 degrees.
        assert slide.orientation == (0.0, -1.0, 0.0, -1.0, 0.0, 0.0)
        expected = expected[::-1, ::-1]
        inset_x, inset_y = width // 5, height // 5
        crop = drawn[
            top + inset_y : top + height - inset_y, left + inset_x : left + width - inset_x
        ]
        reference = expected[inset_y : height - inset_y, inset_x : width - inset_x]
        difference, correlation = _similar(crop, reference)
        assert difference < 20 and correlation > 0.9, (difference, correlation)
        _zoom_and_pan(page, recorder, {"x": 0, "y": 0, **VIEWPORT})
        _screenshot(page, artifacts / "dmv-zoomed.png")
        base = recorder.matching(lambda url: _frames(url) and slide.base in url)
        assert base, "zooming in never reached the base level"
        recorder.assert_clean()
    finally:
        page.close()
