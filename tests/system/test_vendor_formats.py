"""Philips TIFF, Leica SCN and Ventana BIF, written by tests/vendorfiles.py from a real slide's
pixels, convert to DICOM WSI that passes dciodvfy and shows the same base-level pixels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from wsidicom import WsiDicom

from converter import ConversionOptions, convert
from tests import vendorfiles
from tests.system.test_converter import INFO, dciodvfy_errors

SOURCE = "svs/CMU-1-Small-Region.svs"
# JPEG is written once by the vendor file and maybe once more by the converter: a mean absolute
# error of a few grey levels is re-encoding, a wrong tile or offset gives tens.
TOLERANCE = 4.0

WRITERS: dict[str, tuple[str, Callable[[Path, np.ndarray], Path]]] = {
    "philips": ("slide.tiff", vendorfiles.write_philips),
    "leica": ("slide.scn", vendorfiles.write_leica),
    "ventana": ("slide.bif", vendorfiles.write_ventana),
}


@pytest.fixture(scope="module")
def region(testdata: Path) -> np.ndarray:
    return vendorfiles.source_region(testdata / SOURCE)


@pytest.mark.parametrize("vendor", list(WRITERS))
def test_vendor_file_converts_with_the_source_pixels(
    vendor: str, region: np.ndarray, tmp_path: Path
) -> None:
    name, write = WRITERS[vendor]
    slide = write(tmp_path / name, region)
    files = convert(slide, tmp_path / "dicom", INFO, ConversionOptions(workers=1))
    assert files
    for file in files:
        assert dciodvfy_errors(file) == [], file.name
    height, width = region.shape[:2]
    with WsiDicom.open(tmp_path / "dicom") as wsi:
        assert (wsi.size.width, wsi.size.height) >= (width, height)
        converted = np.asarray(wsi.read_region((0, 0), 0, (width, height)).convert("RGB"))
    error = np.abs(converted.astype(int) - region.astype(int)).mean()
    assert error < TOLERANCE, f"{vendor}: mean absolute error {error:.2f}"
    # A shifted image would also be close on a smooth slide: the error must be far smaller
    # than against the source moved by one tile.
    shifted = np.abs(converted[:, vendorfiles.TILE :].astype(int) - region[:, : -vendorfiles.TILE])
    assert shifted.mean() > 3 * error + 1
