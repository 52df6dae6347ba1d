"""Philips TIFF, 3DHISTECH TIFF and MRXS, Leica SCN and Ventana BIF, written by tests/vendorfiles.py
from a real slide's pixels, convert to DICOM WSI that passes dciodvfy and shows the same
base-level pixels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from wsidicom import WsiDicom

from converter import ConversionOptions, convert
from converter.sources import candidates
from tests import vendorfiles
from tests.dicomfiles import frames
from tests.system.test_converter import INFO, dciodvfy_errors, same_bytes

SOURCE = "svs/CMU-1-Small-Region.svs"
# JPEG is written once by the vendor file and maybe once more by the converter: a mean absolute
# error of a few grey levels is re-encoding, a wrong tile or offset gives tens.
# The test BIF read unstitched by tiffslide (16 pixels misplaced per tile) measures 5.7.
TOLERANCE = 3.0

# File name, writer and the reader that converts it.
WRITERS: dict[str, tuple[str, Callable[[Path, np.ndarray], Path], str]] = {
    "philips": ("slide.tiff", vendorfiles.write_philips, "OpenTileSource"),
    "3dhistech": ("slide.tiff", vendorfiles.write_3dhistech, "OpenTileSource"),
    "leica": ("slide.scn", vendorfiles.write_leica, "TiffSlideSource"),
    "ventana": ("slide.bif", vendorfiles.write_ventana, "OpenSlideSource"),
    "mrxs": ("slide.mrxs", vendorfiles.write_mrxs, "OpenSlideSource"),
}


@pytest.fixture(scope="module")
def region(testdata: Path) -> np.ndarray:
    return vendorfiles.source_region(testdata / SOURCE)


@pytest.fixture(scope="module")
def written(region: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each vendor's file, in a folder of its own."""
    out = {}
    for vendor, (name, write, _) in WRITERS.items():
        out[vendor] = write(tmp_path_factory.mktemp(vendor) / name, region)
    return out


@pytest.mark.parametrize("vendor", list(WRITERS))
def test_vendor_file_converts_with_the_source_pixels(
    vendor: str, written: dict[str, Path], region: np.ndarray, tmp_path: Path
) -> None:
    slide = written[vendor]
    reader = WRITERS[vendor][2]
    assert candidates(slide)[0].__name__ == reader
    files = convert(slide, tmp_path / "dicom", INFO, ConversionOptions(workers=1))
    assert files
    for file in files:
        assert dciodvfy_errors(file) == [], file.name
    with WsiDicom.open(tmp_path / "dicom") as wsi:
        # A BIF's stitched tiles cover a little less than the source region.
        width, height = min(wsi.size.width, region.shape[1]), min(wsi.size.height, region.shape[0])
        assert (width, height) >= (region.shape[1] - 64, region.shape[0] - 64)
        converted = np.asarray(wsi.read_region((0, 0), 0, (width, height)).convert("RGB"))
    expected = region[:height, :width].astype(int)
    error = np.abs(converted.astype(int) - expected).mean()
    assert error < TOLERANCE, f"{vendor}: mean absolute error {error:.2f}"
    # The match is the image's, not the slide's smoothness: one tile off it is far worse.
    tile = vendorfiles.TILE
    shifted = np.abs(converted[:, tile:].astype(int) - expected[:, :-tile]).mean()
    assert shifted > 3 * error + 1, f"{vendor}: shifted error {shifted:.2f}"
    print(f"{vendor}: {reader}, mean absolute error {error:.2f}, shifted {shifted:.2f}")


def _level_tiles(path: Path) -> dict[int, list[bytes]]:
    """Every level's tiles as opentile reads them, by the level's width."""
    from opentile import OpenTile

    out = {}
    with OpenTile.open(path) as tiler:
        for level in tiler.levels:
            across, down = level.tiled_size.width, level.tiled_size.height
            tiles = [level.get_tile((x, y)) for y in range(down) for x in range(across)]
            out[level.image_size.width] = tiles
    return out


@pytest.mark.parametrize("vendor", ["philips", "3dhistech"])
def test_opentile_formats_copy_every_level_byte_for_byte(
    vendor: str, written: dict[str, Path], tmp_path: Path
) -> None:
    """The written files hold three levels; each is copied, none generated in its place
    (opentile gave every 3DHISTECH page pyramid index 0 until converter.patches set it)."""
    files = convert(written[vendor], tmp_path, INFO, ConversionOptions(workers=1))
    volumes = {
        int(dataset.TotalPixelMatrixColumns): (dataset, file)
        for file in files
        if (dataset := pydicom.dcmread(file, stop_before_pixels=True)).ImageType[2] == "VOLUME"
    }
    levels = _level_tiles(written[vendor])
    assert sorted(levels) == [256, 512, 1024]
    for width, tiles in levels.items():
        assert same_bytes(frames(volumes[width][1]), tiles), width


def test_leica_slide_of_two_regions_keeps_each_in_its_place(
    region: np.ndarray, tmp_path: Path
) -> None:
    """Two scanned regions of one SCN become one image of their bounding box, placed on the
    slide by the first's offset, each region's pixels where its view puts it and white (the
    brightfield background) between them: OpenSlide reads it (tiffslide fills the gap black)."""
    slide = vendorfiles.write_leica_regions(tmp_path / "regions.scn", region)
    assert candidates(slide)[0].__name__ == "OpenSlideSource"
    files = convert(slide, tmp_path / "dicom", INFO, ConversionOptions(workers=1))
    for file in files:
        assert dciodvfy_errors(file) == [], file.name
    spacing_nm = vendorfiles.SPACING_MM * vendorfiles.NM_PER_MM
    (ax, ay), (bx, by) = (
        (round(x / spacing_nm), round(y / spacing_nm)) for x, y in vendorfiles.LEICA_REGIONS_NM
    )
    half = region.shape[1] // 2
    left, right = region[:, :half].astype(int), region[:, half:].astype(int)
    with WsiDicom.open(tmp_path / "dicom") as wsi:
        assert (wsi.size.width, wsi.size.height) == (bx + half - ax, by + region.shape[0] - ay)
        size = (half, region.shape[0])
        first = np.asarray(wsi.read_region((0, 0), 0, size).convert("RGB")).astype(int)
        second = np.asarray(wsi.read_region((bx - ax, by - ay), 0, size).convert("RGB"))
        gap = np.asarray(wsi.read_region((half + 16, 0), 0, (64, by - ay - 8)).convert("RGB"))
    assert np.abs(first - left).mean() < TOLERANCE
    assert np.abs(second.astype(int) - right).mean() < TOLERANCE
    assert np.abs(second.astype(int) - left).mean() > 3 * TOLERANCE  # not the same half twice
    assert gap.min() >= 250, "the space between regions is background"
    base = max(
        (pydicom.dcmread(f, stop_before_pixels=True) for f in files),
        key=lambda d: int(d.TotalPixelMatrixColumns),
    )
    origin = base.TotalPixelMatrixOriginSequence[0]
    expected_mm = [v / vendorfiles.NM_PER_MM for v in vendorfiles.LEICA_REGIONS_NM[0]]
    assert [
        float(origin.XOffsetInSlideCoordinateSystem),
        float(origin.YOffsetInSlideCoordinateSystem),
    ] == expected_mm


def test_ventana_slide_of_two_areas_keeps_each_in_its_place(
    region: np.ndarray, tmp_path: Path
) -> None:
    """Two scanned areas (AOIs) of one BIF, stored side by side in the mosaic, become one image
    with each area stitched where its Pos-X puts it and white between them."""
    slide = vendorfiles.write_ventana_areas(tmp_path / "areas.bif", region)
    assert candidates(slide)[0].__name__ == "OpenSlideSource"
    files = convert(slide, tmp_path / "dicom", INFO, ConversionOptions(workers=1))
    for file in files:
        assert dciodvfy_errors(file) == [], file.name
    half = region.shape[1] // 2
    step = vendorfiles.TILE - 16
    width = step + vendorfiles.TILE  # two tiles across each area, 16 pixels overlapping
    height = 2 * step + vendorfiles.TILE
    second_x = vendorfiles.VENTANA_SECOND_AREA_X
    with WsiDicom.open(tmp_path / "dicom") as wsi:
        assert (wsi.size.width, wsi.size.height) == (second_x + width, height)
        first = np.asarray(wsi.read_region((0, 0), 0, (width, height)).convert("RGB"))
        second = np.asarray(wsi.read_region((second_x, 0), 0, (width, height)).convert("RGB"))
        gap_size = (second_x - width - 16, height)
        gap = np.asarray(wsi.read_region((width + 8, 0), 0, gap_size).convert("RGB"))
    left = region[:height, :width].astype(int)
    right = region[:height, half : half + width].astype(int)
    assert np.abs(first.astype(int) - left).mean() < TOLERANCE
    assert np.abs(second.astype(int) - right).mean() < TOLERANCE
    assert np.abs(second.astype(int) - left).mean() > 3 * TOLERANCE  # not the same area twice
    assert gap.min() >= 250, "the space between areas is background"
