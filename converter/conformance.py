"""What wsidicom's output needs to meet the WSI IOD as dciodvfy's WG26SP2025 profile checks
it, and pyramid levels built from 16-bit tiles (installed by converter.patches)."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset


def fix(dataset: Dataset) -> Dataset:
    """PS3.3 C.8.12.4 (Whole Slide Microscopy Image Module): MONOCHROME2 needs Presentation
    LUT Shape and the Rescale attributes. PS3.3 C.7.6.22 (Specimen Module): the Primary
    Anatomic Structure Sequence of a specimen item is Type 3 with one or more items, so a
    specimen whose anatomy is not known has none (wsidicom writes it empty)."""
    if dataset.get("PhotometricInterpretation") == "MONOCHROME2":
        dataset.PresentationLUTShape = "IDENTITY"
        dataset.RescaleSlope = 1
        dataset.RescaleIntercept = 0
    for item in dataset.get("SpecimenDescriptionSequence") or []:
        if "PrimaryAnatomicStructureSequence" in item and not item.PrimaryAnatomicStructureSequence:
            del item.PrimaryAnatomicStructureSequence
    return dataset


def reduce(tile: Image.Image) -> Image.Image:
    """2x2 mean of a tile; Pillow's reduce() has no 16-bit grey mode, so numpy does those."""
    if not tile.mode.startswith("I"):
        return tile.reduce(2)
    data = np.asarray(tile, dtype=np.uint32)
    height, width = data.shape[0] // 2 * 2, data.shape[1] // 2 * 2
    data = data[:height, :width]
    mean = (data[0::2, 0::2] + data[1::2, 0::2] + data[0::2, 1::2] + data[1::2, 1::2] + 2) // 4
    return Image.fromarray(mean.astype(np.uint16))


def pad(tile: Image.Image, size: Any) -> Image.Image:
    """A generated tile made from a single row or column of tiles comes out half size;
    every frame must be Rows x Columns, so it is padded (white for colour, black for grey)."""
    width, height = size.width, size.height
    if tile.size == (width, height):
        return tile
    fill = (255, 255, 255) if tile.mode == "RGB" else 0
    padded = Image.new(tile.mode, (width, height), fill)
    padded.paste(tile, (0, 0))
    return padded
