"""Annotations on a slide in a real browser (Debian's Chromium, Playwright) against a real
archive: drawn and saved as a Comprehensive 3D SR through STOW-RS, shown again after a
reload and, without one, in a second browser on the same slide; a highdicom SR (as Slim
writes) and a 100,000-polygon bulk annotation (as an AI writes) are shown too, and the bulk
annotation is served small (metadata) and by ranges (bulk data), as highdicom reads it."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient

from tests.annotations import fresh_copy, nuclei_annotations, slim_report, with_patient
from tests.chromium import CHROMIUM, FLAGS, artifacts_folder
from tests.servers import ArchiveServer

PROJECT = Path(__file__).resolve().parents[2]
PAGE_DIR = PROJECT / "tests" / "browser"
DMV_DIST = PROJECT / "web" / "node_modules" / "dicom-microscopy-viewer" / "dist"
BUNDLE_DIR = PAGE_DIR / "dist"  # tests/browser/build.mjs writes the page's bundle here
SR_3D = "1.2.840.10008.5.1.4.1.1.88.34"
POINTS = "00660016"
NUCLEI = 100_000
# The metadata of a 100,000-polygon ANN without its bulk data is a few KB; inline, the
# coordinates alone would be 6.4 MB (8.5 MB as base64).
METADATA_LIMIT = 20_000


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):  # type: ignore[no-untyped-def]
    return artifacts_folder(tmp_path_factory)


@pytest.fixture(scope="module")
def site(tmp_path_factory, testdata):  # type: ignore[no-untyped-def]
    subprocess.run(["node", str(PAGE_DIR / "build.mjs")], check=True, timeout=120)
    server = ArchiveServer(tmp_path_factory.mktemp("annotations") / "data").start()
    try:
        slide = with_patient(pydicom.dcmread(testdata / "dicom" / "wsi2dcm_jpeg.dcm"))
        yield server, slide
    finally:
        server.stop()


def _store(server: ArchiveServer, slide: pydicom.Dataset) -> pydicom.Dataset:
    copy = fresh_copy(slide)
    DICOMwebClient(server.url).store_instances([copy])
    return copy


def _serve_page(context, origin: str) -> None:  # type: ignore[no-untyped-def]
    """The test page and the viewer's bundle under <origin>/annotest/ (the archive's own
    origin, as the built-in viewer's pages will be): fulfilled by the browser context."""

    def fulfil(route) -> None:  # type: ignore[no-untyped-def]
        path = route.request.url.split("/annotest/", 1)[1].split("?", 1)[0]
        if path.startswith("dmv/"):
            file = DMV_DIST / path[len("dmv/") :]
        elif path == "annotate.bundle.js":
            file = BUNDLE_DIR / path
        else:
            file = PAGE_DIR / path
        if not file.is_file():
            route.fulfill(status=404, body="")
            return
        types = {".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm"}
        route.fulfill(
            status=200, body=file.read_bytes(), content_type=types.get(file.suffix, "text/plain")
        )

    context.route(f"{origin}/annotest/**", fulfil)


def _open(context, server: ArchiveServer, slide: pydicom.Dataset, poll: int = 1000):  # type: ignore[no-untyped-def]
    origin = server.url[: -len("/dicomweb")]
    _serve_page(context, origin)
    page = context.new_page()
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.errors = []
    page.goto(
        f"{origin}/annotest/annotate.html?study={slide.StudyInstanceUID}"
        f"&series={slide.SeriesInstanceUID}&poll={poll}"
    )
    page.wait_for_function("window.ready === true || window.startError", timeout=30_000)
    assert page.evaluate("window.startError || null") is None
    page.wait_for_function("window.annotations.state.polls >= 1", timeout=10_000)
    return page


def _rois(page) -> list[dict]:  # type: ignore[no-untyped-def]
    return page.evaluate(
        """() => window.viewer.getAllROIs().map((roi) => ({
            uid: roi.uid, type: roi.scoord3d.graphicType, data: roi.scoord3d.graphicData,
            frame: roi.scoord3d.frameOfReferenceUID }))"""
    )


def _pixels(page) -> np.ndarray:  # type: ignore[no-untyped-def]
    from PIL import Image

    shot = page.locator("#viewport").screenshot()
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)


def _draw_polygon_and_rectangle(page) -> None:  # type: ignore[no-untyped-def]
    box = page.locator("#viewport").bounding_box()
    x, y = box["x"], box["y"]
    page.click("button[data-tool=polygon]")
    for dx, dy in ((300, 250), (420, 260), (380, 380), (300, 250)):
        page.mouse.move(x + dx, y + dy)
        page.wait_for_timeout(100)
        page.mouse.click(x + dx, y + dy)
        page.wait_for_timeout(150)
    page.click("button[data-tool=box]")
    for dx, dy in ((550, 300), (650, 420)):
        page.mouse.move(x + dx, y + dy)
        page.wait_for_timeout(100)
        page.mouse.click(x + dx, y + dy)
        page.wait_for_timeout(150)
    page.click("button[data-tool=pan]")


def _stored_reports(server: ArchiveServer, slide: pydicom.Dataset) -> list[pydicom.Dataset]:
    client = DICOMwebClient(server.url)
    found = client.search_for_instances(slide.StudyInstanceUID, search_filters={"Modality": "SR"})
    return [
        client.retrieve_instance(
            slide.StudyInstanceUID, item["0020000E"]["Value"][0], item["00080018"]["Value"][0]
        )
        for item in found
    ]


def _dciodvfy_errors(dataset: pydicom.Dataset, directory: Path) -> list[str]:
    """dciodvfy's errors on *dataset* (the IOD and its SR content constraints)."""
    path = directory / "object.dcm"
    dataset.save_as(path)
    tool = Path(sys.executable).with_name("dciodvfy")
    result = subprocess.run([str(tool), str(path)], capture_output=True, text=True, timeout=60)
    return [
        line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")
    ]


def test_drawn_annotations_are_stored_shown_again_and_shared_live(
    site, tmp_path, artifacts
) -> None:
    from playwright.sync_api import sync_playwright

    server, template = site
    slide = _store(server, template)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            first = browser.new_context(viewport={"width": 1100, "height": 900})
            second = browser.new_context(viewport={"width": 1100, "height": 900})
            a = _open(first, server, slide)
            b = _open(second, server, slide)
            assert _rois(b) == []
            _draw_polygon_and_rectangle(a)
            drawn = _rois(a)
            assert [roi["type"] for roi in drawn] == ["POLYGON", "POLYGON"], drawn
            assert len(drawn[0]["data"]) == 4 and len(drawn[1]["data"]) == 5  # rings closed
            saved_at = time.monotonic()
            a.evaluate("window.annotations.save()")
            # B sees them within a few seconds, without a reload.
            b.wait_for_function("window.viewer.getAllROIs().length === 2", timeout=8_000)
            seen_after = time.monotonic() - saved_at
            assert sorted(r["uid"] for r in _rois(b)) == sorted(r["uid"] for r in drawn)
            # A reloads: both are shown again, where they were drawn.
            a.reload()
            a.wait_for_function("window.ready === true", timeout=30_000)
            a.wait_for_function("window.viewer.getAllROIs().length === 2", timeout=10_000)
            again = {roi["uid"]: roi for roi in _rois(a)}
            for roi in drawn:
                np.testing.assert_allclose(again[roi["uid"]]["data"], roi["data"], atol=1e-9)
                assert again[roi["uid"]]["frame"] == slide.FrameOfReferenceUID
            a.screenshot(path=str(artifacts / "annotations-reloaded.png"))
            assert a.errors == [] and b.errors == []
        finally:
            browser.close()
    assert seen_after < 6, seen_after
    # Independently: the stored object, read by pydicom and highdicom from WADO-RS.
    [stored] = _stored_reports(server, slide)
    assert stored.SOPClassUID == SR_3D and stored.Modality == "SR"
    assert _dciodvfy_errors(stored, tmp_path) == []
    assert stored.StudyInstanceUID == slide.StudyInstanceUID
    evidence = stored.PertinentOtherEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.SeriesInstanceUID == slide.SeriesInstanceUID
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == slide.SOPInstanceUID
    report = hd.sr.Comprehensive3DSR.from_dataset(stored)
    groups = report.content.get_planar_roi_measurement_groups()
    by_uid = {str(group.tracking_uid): group for group in groups}
    assert set(by_uid) == {roi["uid"] for roi in drawn}
    for roi in drawn:
        region = by_uid[roi["uid"]].roi
        assert region.graphic_type == hd.sr.GraphicTypeValues3D.POLYGON
        assert region.frame_of_reference_uid == slide.FrameOfReferenceUID
        np.testing.assert_allclose(region.value, roi["data"], rtol=1e-6, atol=1e-9)


def test_points_lines_and_ellipses_are_saved_and_shown_again(site) -> None:
    from playwright.sync_api import sync_playwright

    server, template = site
    slide = _store(server, template)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = _open(
                browser.new_context(viewport={"width": 1100, "height": 900}), server, slide
            )
            box = page.locator("#viewport").bounding_box()
            x, y = box["x"], box["y"]
            page.click("button[data-tool=point]")
            page.mouse.move(x + 200, y + 200)
            page.mouse.click(x + 200, y + 200)
            page.wait_for_timeout(150)
            page.click("button[data-tool=line]")
            for dx, dy in ((300, 500), (450, 520)):
                page.mouse.move(x + dx, y + dy)
                page.wait_for_timeout(100)
                page.mouse.click(x + dx, y + dy)
                page.wait_for_timeout(150)
            page.mouse.dblclick(x + 600, y + 560)
            page.wait_for_timeout(150)
            page.click("button[data-tool=circle]")
            for dx, dy in ((700, 250), (760, 250)):
                page.mouse.move(x + dx, y + dy)
                page.wait_for_timeout(100)
                page.mouse.click(x + dx, y + dy)
                page.wait_for_timeout(150)
            page.click("button[data-tool=pan]")
            drawn = {roi["type"]: roi for roi in _rois(page)}
            assert sorted(drawn) == ["ELLIPSE", "POINT", "POLYLINE"], drawn
            assert len(drawn["ELLIPSE"]["data"]) == 4  # the ends of both axes (PS3.3 C.18.9.1.2)
            page.evaluate("window.annotations.save()")
            page.reload()
            page.wait_for_function("window.ready === true", timeout=30_000)
            page.wait_for_function("window.viewer.getAllROIs().length === 3", timeout=10_000)
            for roi in _rois(page):
                shown, saved = np.array(roi["data"]), np.array(drawn[roi["type"]]["data"])
                if roi["type"] == "ELLIPSE":
                    # The same axes' ends; DMV lists them from its geometry, so in another
                    # order, rounded to 0.1 µm again.
                    shown, saved = (np.array(sorted(map(tuple, a))) for a in (shown, saved))
                np.testing.assert_allclose(shown, saved, rtol=0, atol=2e-4)
            assert page.errors == []
        finally:
            browser.close()
    [stored] = _stored_reports(server, slide)
    groups = hd.sr.Comprehensive3DSR.from_dataset(
        stored
    ).content.get_planar_roi_measurement_groups()
    types = sorted(group.roi.graphic_type.value for group in groups)
    assert types == ["ELLIPSE", "POINT", "POLYLINE"]


def test_an_sr_written_as_slim_writes_it_is_shown(site) -> None:
    from playwright.sync_api import sync_playwright

    server, template = site
    slide = _store(server, template)
    to_slide = hd.spatial.ImageToReferenceTransformer.for_image(slide, for_total_pixel_matrix=True)
    square = to_slide(np.array([[100, 100], [300, 100], [300, 250], [100, 250], [100, 100]], float))
    point = to_slide(np.array([[500, 400]], float))
    report = slim_report(slide, [("POLYGON", square), ("POINT", point)])
    DICOMwebClient(server.url).store_instances([report])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = _open(browser.new_context(), server, slide)
            page.wait_for_function("window.viewer.getAllROIs().length === 2", timeout=10_000)
            rois = sorted(_rois(page), key=lambda roi: roi["type"])
            assert [roi["type"] for roi in rois] == ["POINT", "POLYGON"]
            # DMV gives slide coordinates rounded to 0.1 µm (a pixel is 16.8 µm here).
            np.testing.assert_allclose(rois[0]["data"], point[0], rtol=0, atol=1e-4)
            np.testing.assert_allclose(rois[1]["data"], square, rtol=0, atol=1e-4)
            assert page.errors == []
        finally:
            browser.close()


def test_a_bulk_annotation_of_100k_nuclei_is_served_small_by_ranges_and_drawn(
    site, artifacts
) -> None:
    from playwright.sync_api import sync_playwright

    server, template = site
    slide = _store(server, template)
    ann = nuclei_annotations(slide, NUCLEI)
    buffer = io.BytesIO()
    ann.save_as(buffer)
    expected = pydicom.dcmread(io.BytesIO(buffer.getvalue())).AnnotationGroupSequence[0]
    client = DICOMwebClient(server.url)
    client.store_instances([ann])
    base = (
        f"{server.url}/studies/{ann.StudyInstanceUID}/series/{ann.SeriesInstanceUID}"
        f"/instances/{ann.SOPInstanceUID}"
    )
    metadata = requests.get(base + "/metadata", headers={"Accept-Encoding": "identity"}, timeout=30)
    assert metadata.status_code == 200
    assert len(metadata.content) < METADATA_LIMIT, len(metadata.content)
    group = metadata.json()[0]["006A0002"]["Value"][0]
    uri = group[POINTS]["BulkDataURI"]
    assert uri == base + "/bulkdata/006A0002/0/00660016"
    assert "BulkDataURI" in group["00660040"]
    whole = requests.get(uri, headers={"Accept": "application/octet-stream"}, timeout=30)
    assert whole.status_code == 200 and whole.content == expected.PointCoordinatesData
    size = len(expected.PointCoordinatesData)
    for start, end in ((0, 99), (size // 2, size // 2 + 4095), (size - 64, size - 1)):
        part = requests.get(
            uri,
            headers={"Accept": "application/octet-stream", "Range": f"bytes={start}-{end}"},
            timeout=30,
        )
        assert part.status_code == 206
        assert part.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
        assert part.content == expected.PointCoordinatesData[start : end + 1]

    # highdicom reads the object from the metadata and the bulk data it names.
    def bulk(tag, vr, value):  # type: ignore[no-untyped-def]
        return requests.get(
            value, headers={"Accept": "application/octet-stream"}, timeout=30
        ).content

    rebuilt = pydicom.Dataset.from_json(metadata.json()[0], bulk_data_uri_handler=bulk)
    rebuilt.file_meta = pydicom.dataset.FileMetaDataset()
    rebuilt.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    read = hd.ann.MicroscopyBulkSimpleAnnotations.from_dataset(rebuilt)
    [read_group] = read.get_annotation_groups()
    assert read_group.number_of_annotations == NUCLEI
    shapes = read_group.get_graphic_data(hd.ann.AnnotationCoordinateTypeValues.SCOORD)
    original = ann.get_annotation_groups()[0].get_graphic_data(
        hd.ann.AnnotationCoordinateTypeValues.SCOORD
    )
    assert len(shapes) == NUCLEI
    for index in (0, 1, NUCLEI // 2, NUCLEI - 1):
        np.testing.assert_array_equal(shapes[index], original[index])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            context = browser.new_context()
            bulk_statuses: list[int] = []
            context.on(
                "response",
                lambda r: bulk_statuses.append(r.status) if "/bulkdata/006A0002" in r.url else None,
            )
            made: list[str] = []
            context.on("console", lambda m: made.append(m.text) if "add n=" in m.text else None)
            page = _open(context, server, slide)
            page.wait_for_function(
                "window.viewer.getAllAnnotationGroups().length === 1", timeout=20_000
            )
            groups = page.evaluate(
                """() => window.viewer.getAllAnnotationGroups().map((g) => ({
                    uid: g.uid, label: g.label,
                    visible: window.viewer.isAnnotationGroupVisible(g.uid) }))"""
            )
            assert groups[0]["uid"] == str(expected.AnnotationGroupUID)
            assert groups[0]["visible"] is True
            deadline = time.monotonic() + 30
            while len(bulk_statuses) < 2 and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            assert len(bulk_statuses) >= 2 and set(bulk_statuses) == {200}, bulk_statuses
            deadline = time.monotonic() + 30
            while not made and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            # DMV made one feature per polygon from the bulk data it fetched.
            assert made and made[0].startswith(f"add n={NUCLEI} annotations"), made
            page.wait_for_timeout(1000)
            shown = _pixels(page)
            page.screenshot(path=str(artifacts / "annotations-nuclei.png"))
            page.evaluate(f"window.viewer.hideAnnotationGroup('{groups[0]['uid']}')")
            page.wait_for_timeout(1000)
            hidden = _pixels(page)
            # Drawn: hiding the group changes much of the viewport (clusters of nuclei).
            changed = (np.abs(shown - hidden).sum(axis=2) > 60).mean()
            assert changed > 0.05, changed
            assert page.errors == []
            assert page.evaluate("window.viewerErrors") == []
            assert page.evaluate("window.annotations.state.errors") == []
        finally:
            browser.close()
