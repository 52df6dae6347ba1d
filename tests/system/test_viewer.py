"""The built-in viewer in a real browser (Debian's Chromium through Playwright) against a real
server: the study list finds a patient's studies with thumbnails; the study view draws the
slide (dicom-microscopy-viewer) as the server's own rendered resource shows the same region,
fetches new frames on zoom and pan, shows the label, and draws the patient's X-ray and MR
(Cornerstone3D) with window/level and frame scrolling. Screenshots go to $WSIARCHIVE_ARTIFACTS."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

from tests.chromium import CHROMIUM, FLAGS, artifacts_folder
from tests.oidc import archive_with_login
from tests.servers import ArchiveServer

PROJECT = Path(__file__).resolve().parents[2]
VIEWER_ARTIFACTS = "viewer-artifacts"  # the temporary folder without $WSIARCHIVE_ARTIFACTS
BUILD = PROJECT / "web" / "dist"
PATIENT, NAME, CONTAINER = "DESK-1", "Desk^Pathologist", "DESK-SLIDE-1"
VIEW = {"width": 1600, "height": 900}
VSI_STACK = "vsi/vsi-ets-test-jpg2k/vsi-ets-test-jpg2k.vsi"  # 2 channels x 11 focal planes
SVS = "svs/tcga-cr-7395-01a-01-ts1.svs"
# Radiology the browser decodes with Cornerstone3D's codecs (served from /viewer/static):
COMPRESSED = {
    "pydicom_JPEG2000.dcm": 1,  # NM, JPEG 2000 (OpenJPEG wasm)
    "pydicom_examples_jpeg2k.dcm": 1,  # US, JPEG 2000 lossless, YBR_RCT
    "fodicom_CR-ModalitySequenceLUT.dcm": 1,  # CR, JPEG lossless (process 14)
    "pydicom_examples_ybr_color.dcm": 30,  # US, JPEG baseline (libjpeg-turbo wasm), 30 frames
}


def ensure_build() -> None:
    """The viewer as scripts/setup.sh builds it (built here when missing)."""
    if (BUILD / "manifest.json").is_file():
        return
    npm = shutil.which("npm")
    if npm is None or not (PROJECT / "web" / "node_modules").is_dir():
        pytest.fail("the viewer is not built and cannot be: run ./scripts/setup.sh --test")
    subprocess.run([npm, "run", "--prefix", str(PROJECT / "web"), "build"], check=True)


def _read(path: Path, force: bool = False) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=force)


def _renew(dataset: Dataset) -> Dataset:
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    return dataset


@dataclass
class Case:
    """The patient's objects as stored: a converted slide with a label, a CR, an MR."""

    slide: list[Dataset]
    label: Dataset
    cr: Dataset
    mr: Dataset
    base: Dataset = field(init=False)  # the slide's base level (ORIGINAL VOLUME)

    def __post_init__(self) -> None:
        self.base = next(
            d for d in self.slide if list(d.ImageType)[:3] == ["ORIGINAL", "PRIMARY", "VOLUME"]
        )

    @property
    def all(self) -> list[Dataset]:
        return [*self.slide, self.label, self.cr, self.mr]


def make_case(testdata: Path, folder: Path, institution: str = "") -> Case:
    """A slide converted from a vendor SVS by `wsiarchive convert` (WG-26 DICOM, with ICC
    profile), the EZ-WSI label instance put on that slide, and two radiology objects (a CR
    chest X-ray, a 19-frame MR) of the same patient in studies of their own."""
    out = folder / "converted"
    subprocess.run(
        [sys.executable, "-m", "wsiarchive", "convert", str(testdata / SVS), "-o", str(out),
         "--mpp", "0.5", "--patient-id", PATIENT, "--patient-name", NAME,
         "--container-id", CONTAINER, "--anatomy", "SCT:39607008:Lung structure",
         "--stain", "hematoxylin stain", "--stain", "water soluble eosin stain"],
        check=True, capture_output=True,
    )  # fmt: skip
    slide = [_read(p) for p in sorted(out.rglob("*.dcm"))]
    study = slide[0].StudyInstanceUID
    label = _renew(_read(testdata / "dicom" / "ezwsi_label_test.dcm"))
    label.StudyInstanceUID, label.SeriesInstanceUID = study, generate_uid()
    label.ContainerIdentifier, label.FrameOfReferenceUID = CONTAINER, slide[0].FrameOfReferenceUID
    cr = _read(testdata / "radiology" / "fodicom_CR-MONO1-10-chest.nopreamble", force=True)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = cr.SOPClassUID
    cr.file_meta = meta
    _renew(cr)
    cr.StudyDate = "19930224"
    mr = _renew(_read(testdata / "radiology" / "fodicom_MOVEKNEE.dcm"))
    for dataset in (*slide, label, cr, mr):
        dataset.PatientID, dataset.PatientName = PATIENT, NAME
        if institution:
            dataset.InstitutionName = institution
    return Case(slide, label, cr, mr)


def _image(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images' luminance."""
    x, y = a.mean(axis=2).ravel(), b.mean(axis=2).ravel()
    return float(np.corrcoef(x, y)[0, 1])


def aligned(a: np.ndarray, b: np.ndarray, reach: int = 3) -> tuple[float, float]:
    """The best (correlation, mean absolute difference) of *a* and *b* over shifts of up to
    *reach* pixels (the viewer's and the server's pixel centres may differ by a pixel)."""
    inner = a[reach:-reach, reach:-reach]
    rows, columns = inner.shape[:2]
    best = (-1.0, 255.0)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            shifted = b[reach + dy : reach + dy + rows, reach + dx : reach + dx + columns]
            found = (correlation(inner, shifted), float(np.abs(inner - shifted).mean()))
            best = max(best, found)
    return best


def not_blank(image: np.ndarray) -> bool:
    return float(image.mean(axis=2).std()) > 8.0


class Frames:
    """The browser's frame requests (WADO-RS …/frames/…) and their statuses."""

    def __init__(self) -> None:
        self.statuses: list[tuple[str, int]] = []

    def __call__(self, response) -> None:
        if "/frames/" in response.url:
            self.statuses.append((response.url, response.status))

    def of(self, series: str) -> list[int]:
        return [status for url, status in self.statuses if f"/series/{series}/" in url]


@dataclass
class Desk:
    server: ArchiveServer
    case: Case
    folder: Path
    fluorescence: list[Dataset]  # another patient's slide of three optical paths
    compressed: list[Dataset]  # a third patient's radiology in compressed transfer syntaxes

    @property
    def origin(self) -> str:
        return self.server.url[: -len("/dicomweb")]


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory, testdata: Path) -> Iterator[Desk]:
    ensure_build()
    root = tmp_path_factory.mktemp("desk")
    case = make_case(testdata, root)
    server = ArchiveServer(root / "data").start()
    try:
        channels = sorted((testdata / "dicom" / "3dhistech-wg26-FluorCell_4").iterdir())
        fluorescence = [_read(path) for path in channels if path.suffix != ".txt"]
        for dataset in fluorescence:
            dataset.PatientID, dataset.PatientName = "DESK-2", "Desk^Other"
        compressed = [_read(testdata / "radiology" / name) for name in COMPRESSED]
        for dataset in compressed:
            dataset.PatientID, dataset.PatientName = "DESK-3", "Desk^Third"
        DICOMwebClient(server.url).store_instances(case.all + fluorescence + compressed)
        yield Desk(
            server,
            case,
            artifacts_folder(tmp_path_factory, VIEWER_ARTIFACTS),
            fluorescence,
            compressed,
        )
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def _page(browser, problems: list[str]):
    page = browser.new_page(viewport=VIEW, device_scale_factor=1)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def console(message) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            problems.append(f"CSP: {message.text}")

    page.on("console", console)
    return page


def test_the_study_list_finds_the_patients_studies_with_thumbnails(desk: Desk, browser) -> None:
    problems: list[str] = []
    page = _page(browser, problems)
    page.goto(desk.origin + "/")
    page.locator("#status", has_text=re.compile(r"^\d+ studies$")).wait_for()  # all at first
    page.fill("input[name=PatientID]", PATIENT)
    page.click("form#search button[type=submit]")
    rows = page.locator("#studies tbody tr.study")
    page.locator("#status", has_text="3 studies").wait_for()
    uids = set(rows.evaluate_all("rows => rows.map(r => r.dataset.uid)"))
    studies = {d.StudyInstanceUID for d in desk.case.all}
    assert uids == studies
    page.wait_for_function(
        "() => [...document.querySelectorAll('#studies img.thumbnail')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=desk.folder / "study-list.png")
    # Each thumbnail is the server's own thumbnail of its study, and not blank.
    for uid in studies:
        shown = page.locator(f"tr.study[data-uid='{uid}'] img.thumbnail")
        source = shown.get_attribute("src")
        assert source is not None
        served = requests.get(source, headers={"Accept": "image/png"}, timeout=30)
        assert served.status_code == 200
        assert not_blank(_image(served.content))
        width = shown.evaluate("i => i.naturalWidth")
        assert width == Image.open(io.BytesIO(served.content)).width
    # The other criteria: a partial name, a modality, a date range (only the CR has 1993).
    page.goto(desk.origin + "/?PatientName=Desk%5EPath&ModalitiesInStudy=SM")
    page.locator("#status", has_text="1 study").wait_for()
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.uid)") == [
        desk.case.base.StudyInstanceUID
    ]
    page.goto(desk.origin + "/?from=1993-01-01&to=1993-12-31")
    page.locator("#status", has_text="1 study").wait_for()
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.uid)") == [
        desk.case.cr.StudyInstanceUID
    ]
    # A click on a row opens the study view.
    page.goto(desk.origin + f"/?PatientID={PATIENT}&ModalitiesInStudy=SM")
    page.locator("#status", has_text="1 study").wait_for()
    rows.first.click()
    page.wait_for_url(re.compile(r"/study/"))
    assert page.url.endswith("/study/" + desk.case.base.StudyInstanceUID)
    page.close()
    assert problems == []


def _settled(
    page, frames: Frames, series: str, quiet_ms: int = 1500, timeout_ms: int = 60_000
) -> None:
    """Wait until the slide's map has drawn every tile it wants and no frame is requested."""
    waited, seen = 0, -1
    while waited < timeout_ms:
        page.evaluate(
            """() => new Promise(done => { const map = desk.shown.viewer.getMap();
                 map.once('rendercomplete', () => done(true)); map.render(); })"""
        )
        count = len(frames.of(series))
        if count == seen and count > 0:
            return
        seen = count
        page.wait_for_timeout(quiet_ms)
        waited += quiet_ms
    raise AssertionError(f"the slide kept requesting frames ({seen})")


def _view(page) -> dict:
    return page.evaluate(
        """() => { const view = desk.shown.viewer.getMap().getView();
             return {rotation: view.getRotation(), resolution: view.getResolution(),
                     center: view.getCenter()} }"""
    )


def _level_series(case: Case) -> str:
    return str(case.base.SeriesInstanceUID)


def test_the_study_view_draws_the_slide_as_the_server_renders_it(desk: Desk, browser) -> None:
    case, problems, frames = desk.case, [], Frames()
    page = _page(browser, problems)
    page.on("response", frames)
    page.goto(desk.origin + "/study/" + case.base.StudyInstanceUID)
    page.wait_for_function("() => window.desk && window.desk.shown")
    series = _level_series(case)
    _settled(page, frames, series)
    page.screenshot(path=desk.folder / "study-view.png")
    assert frames.of(series) and set(frames.of(series)) == {200}
    slide = page.locator("#slide")
    assert not_blank(_image(slide.screenshot()))
    # ICC-corrected colour: the viewer holds the slide's ICC profile (its default, kept on).
    assert page.evaluate("() => desk.shown.viewer.getICCProfiles().length") >= 1
    assert page.evaluate("() => desk.shown.viewer.getAllOpticalPaths().length") == 1
    assert page.locator("#paths-panel").is_hidden()  # one optical path: no toggles

    # One screen pixel per base-level pixel, centred in the tissue: the drawn region must
    # be the one the server renders (ICC to sRGB, as the viewer converts it).
    cx, cy = 2000, 1800
    page.evaluate(
        f"""() => {{ const view = desk.shown.viewer.getMap().getView();
              view.setResolution(1); view.setCenter([{cx}, {-cy}]); }}"""
    )
    _settled(page, frames, series)
    view = _view(page)
    assert view["resolution"] == pytest.approx(1.0)
    turns = round(view["rotation"] / np.pi)
    assert view["rotation"] == pytest.approx(turns * np.pi), "a slide turned by a quarter"
    box = slide.bounding_box()
    assert box is not None
    shot = _image(page.screenshot(clip=box))
    height, width = shot.shape[:2]
    w, h = width // 2, height // 2
    top, left = height // 2 - h // 2, width // 2 - w // 2
    drawn = shot[top : top + h, left : left + w]
    Image.fromarray(drawn.astype(np.uint8)).save(desk.folder / "slide-region-drawn.png")
    rendered = requests.get(
        f"{desk.server.url}/studies/{case.base.StudyInstanceUID}/series/{series}"
        f"/instances/{case.base.SOPInstanceUID}/rendered",
        params={"viewport": f"{w},{h},{cx - w // 2},{cy - h // 2},{w},{h}", "iccprofile": "srgb"},
        headers={"Accept": "image/png"},
        timeout=60,
    )
    assert rendered.status_code == 200
    expected = _image(rendered.content)
    if turns % 2:
        expected = np.rot90(expected, 2)
    Image.fromarray(expected.astype(np.uint8)).save(desk.folder / "slide-region-rendered.png")
    assert expected.shape == drawn.shape
    assert not_blank(drawn)
    similar, difference = aligned(drawn, expected)
    assert similar > 0.97, similar
    assert difference < 6.0, difference

    # Zoom out and in with the wheel and pan by dragging: new frames, every one 200.
    before = len(frames.of(series))
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.evaluate("() => desk.shown.viewer.getMap().getView().setResolution(4)")
    _settled(page, frames, series)
    page.mouse.move(*middle)
    for _ in range(3):
        page.mouse.wheel(0, -300)
        page.wait_for_timeout(300)
    page.mouse.down()
    page.mouse.move(middle[0] - 400, middle[1] - 250, steps=12)
    page.mouse.up()
    _settled(page, frames, series)
    page.screenshot(path=desk.folder / "study-view-zoomed.png")
    assert len(frames.of(series)) > before
    assert set(frames.of(series)) == {200}
    assert _view(page)["resolution"] < 4
    page.close()
    assert problems == []


def test_the_study_view_shows_the_label(desk: Desk, browser) -> None:
    problems: list[str] = []
    page = _page(browser, problems)
    shown = desk.case.label
    label = f"/series/{shown.SeriesInstanceUID}/instances/{shown.SOPInstanceUID}/rendered"
    with page.expect_response(lambda r: label in r.url, timeout=60_000) as answer:
        page.goto(desk.origin + "/study/" + desk.case.base.StudyInstanceUID)
    assert answer.value.status == 200
    page.locator("#label-panel").wait_for(state="visible")
    page.wait_for_timeout(1000)
    drawn = _image(page.locator("#label").screenshot())
    Image.fromarray(drawn.astype(np.uint8)).save(desk.folder / "label.png")
    assert not_blank(drawn)
    page.close()
    assert problems == []


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image.astype(np.uint8)).resize((size, size)), np.float64)


def _radiology(page) -> np.ndarray:
    return _image(page.locator("#xray").screenshot())


def test_the_radiology_pane_draws_the_xray_with_window_level(desk: Desk, browser) -> None:
    case, problems, frames = desk.case, [], Frames()
    page = _page(browser, problems)
    page.on("response", frames)
    page.goto(desk.origin + "/study/" + case.base.StudyInstanceUID)
    # The patient's other studies are listed, and the X-ray of one of them can be opened.
    page.locator("#others a").nth(1).wait_for()
    others = set(page.locator("#others a").evaluate_all("links => links.map(a => a.href)"))
    assert others == {
        f"{desk.origin}/study/{case.cr.StudyInstanceUID}",
        f"{desk.origin}/study/{case.mr.StudyInstanceUID}",
    }
    page.click(f"#radiology button[data-series='{case.cr.SeriesInstanceUID}']")
    page.wait_for_function(
        f"() => document.body.dataset.radiology === '{case.cr.SeriesInstanceUID}'"
    )
    page.wait_for_timeout(1500)
    assert set(frames.of(case.cr.SeriesInstanceUID)) == {200}
    before = _radiology(page)
    page.screenshot(path=desk.folder / "slide-and-xray.png")
    assert not_blank(before)
    # The drawn X-ray is the server's rendering of it (fitted, centred, square).
    height, width = before.shape[:2]
    side = min(height, width)
    drawn = before[
        (height - side) // 2 : (height + side) // 2, (width - side) // 2 : (width + side) // 2
    ]
    rendered = requests.get(
        f"{desk.server.url}/studies/{case.cr.StudyInstanceUID}/series/{case.cr.SeriesInstanceUID}"
        f"/instances/{case.cr.SOPInstanceUID}/rendered",
        params={"viewport": f"{side},{side}"},
        headers={"Accept": "image/png"},
        timeout=60,
    )
    assert rendered.status_code == 200
    expected = _image(rendered.content)
    size = min(expected.shape[0], drawn.shape[0], 256)
    assert correlation(_resized(drawn, size), _resized(expected, size)) > 0.9
    # A drag with the primary button changes the window: the pixels change.
    box = page.locator("#xray").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 150, box["y"] + box["height"] / 2 + 120, steps=10)
    page.mouse.up()
    page.wait_for_timeout(500)
    after = _radiology(page)
    Image.fromarray(after.astype(np.uint8)).save(desk.folder / "xray-windowed.png")
    assert float(np.abs(after - before).mean()) > 5.0
    page.close()
    assert problems == []


def test_the_wheel_scrolls_through_the_frames_of_a_multiframe_mr(desk: Desk, browser) -> None:
    case, problems, frames = desk.case, [], Frames()
    page = _page(browser, problems)
    page.on("response", frames)
    page.goto(desk.origin + "/study/" + case.mr.StudyInstanceUID)
    # This study has no slide: the patient's slide (another study) is shown beside the MR.
    page.wait_for_function(
        f"() => document.body.dataset.radiology === '{case.mr.SeriesInstanceUID}'"
    )
    page.wait_for_function(f"() => document.body.dataset.slide === '{case.base.SeriesInstanceUID}'")
    assert page.evaluate("() => desk.viewport.getImageIds().length") == int(case.mr.NumberOfFrames)
    page.wait_for_timeout(1000)
    first = _radiology(page)
    assert not_blank(first)
    box = page.locator("#xray").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(5):
        page.mouse.wheel(0, 120)
        page.wait_for_timeout(150)
    page.wait_for_function("() => desk.viewport.getCurrentImageIdIndex() > 0")
    index = page.evaluate("() => desk.viewport.getCurrentImageIdIndex()")
    total = int(case.mr.NumberOfFrames)
    page.locator("#xray-frame", has_text=f"frame {index + 1} / {total}").wait_for()
    page.wait_for_timeout(800)
    later = _radiology(page)
    page.screenshot(path=desk.folder / "slide-and-mr.png")
    assert float(np.abs(later - first).mean()) > 1.0
    assert len(frames.of(case.mr.SeriesInstanceUID)) > 1
    assert set(frames.of(case.mr.SeriesInstanceUID)) == {200}
    page.close()
    assert problems == []


def test_a_401_sends_the_browser_to_login_and_back(
    tmp_path_factory, testdata: Path, browser
) -> None:
    """With authentication on, the study view's first DICOMweb request gets 401; the page goes
    to /login?next=<itself>, the provider logs the browser in, and it comes back to the same
    study, showing who is logged in and a logout link."""
    ensure_build()
    root = tmp_path_factory.mktemp("desk-login")
    case = make_case(testdata, root, institution="LEEDS")
    with archive_with_login(root / "site") as (server, provider):
        writer = {"Authorization": f"Bearer {provider.token(['write'])}"}
        DICOMwebClient(server.url, headers=writer).store_instances([case.base, case.cr])
        origin = server.url[: -len("/dicomweb")]
        config = requests.get(origin + "/viewer/config.json", timeout=10).json()
        assert config["login"] is True and config["user"] is None
        problems: list[str] = []
        page = _page(browser, problems)
        logins: list[str] = []
        page.on("request", lambda r: logins.append(r.url) if "/login?" in r.url else None)
        target = "/study/" + case.base.StudyInstanceUID
        with page.expect_request(lambda r: "/callback?" in r.url, timeout=60_000):
            page.goto(origin + target)
        page.wait_for_url(origin + target)
        page.wait_for_function("() => window.desk && window.desk.shown", timeout=60_000)
        assert page.url == origin + target
        assert (
            logins and logins[0] == f"{origin}/login?next={requests.utils.quote(target, safe='')}"
        )
        assert page.locator("#user .who").inner_text().endswith("alice")  # the subject
        assert page.locator("#logout").get_attribute("href") == "/logout"
        page.screenshot(path=artifacts_folder(tmp_path_factory, VIEWER_ARTIFACTS) / "logged-in.png")
        page.close()
        assert problems == []


def test_the_pages_policy_lets_nothing_from_elsewhere_run(desk: Desk) -> None:
    page = requests.get(desk.origin + "/", timeout=10)
    assert page.status_code == 200
    policy = page.headers["Content-Security-Policy"]
    assert (
        "script-src 'self' 'wasm-unsafe-eval'" in policy
        and "unsafe-eval'" not in policy.replace("'wasm-unsafe-eval'", "")
    )
    manifest = json.loads((BUILD / "manifest.json").read_text())
    assert f"{manifest['static']}/list.js" in page.text


def test_a_slide_of_several_optical_paths_gets_a_toggle_per_path(desk: Desk, browser) -> None:
    problems: list[str] = []
    page = _page(browser, problems)
    page.goto(desk.origin + "/study/" + desk.fluorescence[0].StudyInstanceUID)
    page.wait_for_function("() => window.desk && window.desk.shown")
    toggles = page.locator("#paths input[type=checkbox]")
    toggles.nth(2).wait_for()
    expected = {
        str(item.OpticalPathIdentifier) for item in desk.fluorescence[0].OpticalPathSequence
    }
    assert set(toggles.evaluate_all("boxes => boxes.map(b => b.dataset.path)")) == expected
    assert toggles.evaluate_all("boxes => boxes.every(b => b.checked)")  # all shown at first
    page.wait_for_timeout(3000)
    slide = page.locator("#slide")
    every = _image(slide.screenshot())
    page.screenshot(path=desk.folder / "fluorescence.png")
    assert not_blank(every)
    # DAPI is drawn in blue: without it the blue of the picture drops, the rest stays.
    dapi = next(
        str(item.OpticalPathIdentifier)
        for item in desk.fluorescence[0].OpticalPathSequence
        if "DAPI" in str(item.get("OpticalPathDescription", ""))
    )
    page.uncheck(f"#paths input[data-path='{dapi}']")
    page.wait_for_timeout(2000)
    assert page.evaluate(f"() => desk.shown.viewer.isOpticalPathVisible('{dapi}')") is False
    without = _image(slide.screenshot())
    page.screenshot(path=desk.folder / "fluorescence-without-dapi.png")
    assert without[..., 2].mean() < every[..., 2].mean() - 1.0
    page.check(f"#paths input[data-path='{dapi}']")
    page.wait_for_timeout(2000)
    again = _image(slide.screenshot())
    assert abs(again[..., 2].mean() - every[..., 2].mean()) < 1.0
    page.close()
    assert problems == []


def test_a_z_stack_opens_at_one_focal_plane(
    desk: Desk, browser, testdata: Path, tmp_path: Path
) -> None:
    """The VSI sample becomes 11 focal planes of 3 levels each; dicom-microscopy-viewer
    refuses two images of one channel, plane and size, so the page gives it the middle
    plane's pyramid: the slide opens with its 3 levels and both channels, and the frames
    it asks for are that plane's."""
    from converter import ConversionOptions, SlideInfo, convert

    info = SlideInfo(patient_id="DESK-4", patient_name="Desk^Stack")
    files = convert(testdata / VSI_STACK, tmp_path / "stack", info, ConversionOptions(workers=1))
    DICOMwebClient(desk.server.url).store_instances([_read(f) for f in files])
    planes = sorted(
        {
            float(_read(f).TotalPixelMatrixOriginSequence[0].ZOffsetInSlideCoordinateSystem)
            for f in files
        }
    )
    middle = planes[(len(planes) - 1) // 2]
    wanted = {
        str(d.SeriesInstanceUID) + "/instances/" + str(d.SOPInstanceUID)
        for d in map(_read, files)
        if float(d.TotalPixelMatrixOriginSequence[0].ZOffsetInSlideCoordinateSystem) == middle
    }
    problems: list[str] = []
    page = _page(browser, problems)
    frames = Frames()
    page.on("response", frames)
    study = str(_read(files[0]).StudyInstanceUID)
    page.goto(desk.origin + "/study/" + study)
    page.wait_for_function("() => window.desk && window.desk.shown")
    page.locator("#paths input[type=checkbox]").nth(1).wait_for()
    assert "3 level(s)" in page.locator("#slides").inner_text()
    page.wait_for_timeout(3000)
    page.screenshot(path=desk.folder / "z-stack.png")
    asked = [(url, status) for url, status in frames.statuses if study in url]
    assert asked and all(status == 200 for _, status in asked)
    assert all(any(w in url for w in wanted) for url, _ in asked)
    page.close()
    assert problems == []


@pytest.mark.parametrize("index", range(len(COMPRESSED)), ids=list(COMPRESSED))
def test_compressed_radiology_is_decoded_in_the_browser(desk: Desk, browser, index: int) -> None:
    dataset, frames_expected = desk.compressed[index], list(COMPRESSED.values())[index]
    problems, frames = [], Frames()
    page = _page(browser, problems)
    page.on("response", frames)
    page.goto(desk.origin + "/study/" + dataset.StudyInstanceUID)
    page.wait_for_function(
        f"() => document.body.dataset.radiology === '{dataset.SeriesInstanceUID}'"
    )
    assert page.evaluate("() => desk.viewport.getImageIds().length") == frames_expected
    page.wait_for_function(
        "() => desk.viewport.getCurrentImageId() && desk.viewport.getImageData()"
    )
    page.wait_for_timeout(1500)
    drawn = _radiology(page)
    page.screenshot(path=desk.folder / f"radiology-{list(COMPRESSED)[index]}.png")
    assert not_blank(drawn)
    assert frames.of(dataset.SeriesInstanceUID) and set(frames.of(dataset.SeriesInstanceUID)) == {
        200
    }
    page.close()
    assert problems == []


def test_an_annotation_drawn_in_the_study_view_is_stored_and_shown_again(
    desk: Desk, browser
) -> None:
    """The study page with the annotations module: a polygon drawn with its toolbar is saved
    through STOW-RS as an SR of the slide's study and drawn again when the page reopens."""
    case, problems, frames = desk.case, [], Frames()
    page = _page(browser, problems)
    page.on("response", frames)
    page.goto(desk.origin + "/study/" + case.base.StudyInstanceUID)
    page.wait_for_function("() => window.desk && window.desk.shown && window.desk.annotations")
    _settled(page, frames, _level_series(case))
    rois = "() => desk.shown.viewer.getAllROIs().map((roi) => roi.scoord3d.graphicType)"
    before = page.evaluate(rois)
    box = page.locator("#slide").bounding_box()
    assert box is not None
    page.click("#annotations button[data-tool=polygon]")
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for dx, dy in ((-60, -40), (60, -30), (20, 70), (-60, -40)):
        page.mouse.move(x + dx, y + dy)
        page.wait_for_timeout(100)
        page.mouse.click(x + dx, y + dy)
        page.wait_for_timeout(150)
    page.click("#annotations button[data-tool=pan]")
    assert page.evaluate(rois) == [*before, "POLYGON"]
    page.evaluate("desk.annotations.save()")
    page.wait_for_function("() => desk.annotations.unsaved().length === 0", timeout=20_000)
    found = DICOMwebClient(desk.server.url).search_for_instances(
        case.base.StudyInstanceUID, search_filters={"Modality": "SR"}
    )
    assert len(found) == 1
    page.reload()
    page.wait_for_function("() => window.desk && window.desk.shown")
    page.wait_for_function(
        f"() => desk.shown.viewer.getAllROIs().length === {len(before) + 1}", timeout=20_000
    )
    _settled(page, frames, _level_series(case))
    page.screenshot(path=desk.folder / "study-view-annotated.png")
    assert set(frames.of(_level_series(case))) == {200}
    page.close()
    assert problems == []
