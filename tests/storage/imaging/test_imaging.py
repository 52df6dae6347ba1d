"""Imaging with no index and no blobs: codecs against independent decoders, display rules,
tiles on the Total Pixel Matrix and the choice of pyramid level."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from storage.dicom.document import JsonDataset
from storage.errors import ImageTooLarge
from storage.imaging.codecs import ImageInfo, Pixels, decode, encode, targets
from storage.imaging.display import (
    IccProfile,
    Presentation,
    RenderedType,
    Viewport,
    Window,
    WindowFunction,
    colour_manage,
    encode_image,
    plan,
    to_display,
)
from storage.imaging.tiles import Flavor, TiledImage, best_level, thumbnail_candidate

RGB = ImageInfo(rows=16, columns=24, samples=3, photometric="RGB")
GREY16 = ImageInfo(rows=8, columns=8, bits_allocated=16, bits_stored=12)


@pytest.mark.parametrize("info", [RGB, GREY16], ids=["rgb8", "grey16"])
def test_lossless_targets_round_trip(info: ImageInfo) -> None:
    rng = np.random.default_rng(1)
    array = rng.integers(0, 1 << info.bits_stored, info.shape).astype(info.dtype)
    for target in targets("1.2.840.10008.1.2.1", info):
        if target in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.91",
                      "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.4.112"):  # fmt: skip
            continue
        encoded = encode(Pixels(array, info.photometric), info, target)
        back = decode(encoded.data, target, info)
        np.testing.assert_array_equal(back.array, array, err_msg=target)
    assert "1.2.840.10008.1.2.4.50" not in targets("1.2.840.10008.1.2.1", GREY16)


def test_image_info_from_the_document() -> None:
    document = JsonDataset(
        {
            "00280010": {"vr": "US", "Value": [16]},
            "00280011": {"vr": "US", "Value": [24]},
            "00280002": {"vr": "US", "Value": [3]},
            "00280004": {"vr": "CS", "Value": ["RGB"]},
        }
    )
    assert ImageInfo.from_document(document) == RGB
    assert ImageInfo.from_document(JsonDataset({})) is None


def test_viewports_and_limits() -> None:
    region = plan(1000, 500, Viewport(200, 200), 10_000_000)
    assert (region.out_width, region.out_height) == (200, 100)
    flipped = plan(1000, 500, Viewport(100, 100, 0, 0, -500, 500), 10_000_000)
    assert flipped.flip_x and (flipped.width, flipped.out_width) == (500, 100)
    with pytest.raises(ImageTooLarge):
        plan(100_000, 100_000, None, 50_000_000)


def test_windows_and_monochrome1() -> None:
    values = np.array([[0, 100, 200]], np.uint16)
    window = Window(100, 100, WindowFunction.LINEAR_EXACT)
    shown = to_display(Pixels(values, "MONOCHROME2"), Presentation(bits_stored=12), window)
    assert shown.tolist() == [[0, 128, 255]]
    inverted = to_display(Pixels(values, "MONOCHROME1"), Presentation(bits_stored=12), window)
    assert inverted.tolist() == [[255, 127, 0]]


def test_colour_management_and_image_files() -> None:
    array = np.full((4, 4, 3), 200, np.uint8)
    same, profile = colour_manage(array, None, None)
    assert same is array and profile is None
    _, embedded = colour_manage(array, None, IccProfile.YES)
    assert embedded  # sRGB assumed and embedded
    for media_type in RenderedType:
        data = encode_image(array, media_type, None, None)
        assert Image.open(io.BytesIO(data)).size == (4, 4)
    png = Image.open(io.BytesIO(encode_image(array, RenderedType.PNG, None, embedded)))
    assert png.info.get("icc_profile") == embedded


def _level(width: int, flavor: str, key: str, patient_data: bool = False) -> TiledImage[str]:
    info = ImageInfo(rows=256, columns=256, samples=3, photometric="RGB")
    image_type = ("ORIGINAL", "PRIMARY", flavor, "NONE")
    return TiledImage(key, key, 1, info, width, width // 2, {1: (0, 0)}, image_type,
                      patient_data=patient_data)  # fmt: skip


def test_levels_and_thumbnails() -> None:
    base, half, quarter = (
        _level(4096, "VOLUME", "b"),
        _level(2048, "VOLUME", "h"),
        _level(1024, "VOLUME", "q"),
    )
    label = _level(300, "LABEL", "l", patient_data=True)
    levels = [base, half, quarter, label]
    assert best_level(base, levels, 4096, 1000).key == "q"  # the smallest with enough pixels
    assert best_level(base, levels, 4096, 3000).key == "b"
    assert best_level(base, levels, 1024, 1000).key == "b"  # a region: detail needed
    assert thumbnail_candidate(levels).key == "q"  # never the label
    assert label.flavor is Flavor.LABEL and _level(10, "WEIRD", "w").flavor is Flavor.OTHER


def test_tiled_full_positions() -> None:
    info = ImageInfo(rows=10, columns=10)
    document = JsonDataset(
        {"00480006": {"vr": "UL", "Value": [25]}, "00480007": {"vr": "UL", "Value": [15]}}
    )
    image = TiledImage.from_document("r", "k", 6, document, info)
    assert (image.width, image.height) == (25, 15)
    assert image.tiles == {1: (0, 0), 2: (10, 0), 3: (20, 0), 4: (0, 10), 5: (10, 10), 6: (20, 10)}
