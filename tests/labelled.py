"""Slides with a printed label, made by the tests: an Aperio SVS (tifffile) whose pyramid is a
region of a real slide and whose label page carries barcodes written by zxing-cpp."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageDraw

APERIO = "Aperio Image Library v11.2.1"
TILE = 256
LABEL_SIZE = (463, 387)  # height, width: CMU-1's label


def barcode(text: str, kind: str, scale: int) -> Image.Image:
    """A barcode of *text* in the zxing-cpp symbology *kind* (e.g. DataMatrix, Code128)."""
    import zxingcpp

    symbol = zxingcpp.create_barcode(text, getattr(zxingcpp.BarcodeFormat, kind))
    return Image.fromarray(np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=scale)))


def label_image(*codes: tuple[str, str]) -> Image.Image:
    """A slide label as a printer makes one: white, a line of text, the barcodes below it;
    with no codes, text only (a hand-written label, as far as a reader can tell)."""
    height, width = LABEL_SIZE
    label = Image.new("L", (width, height), 250)
    draw = ImageDraw.Draw(label)
    draw.text((20, 12), "H&E  lab 3", fill=20)
    top = 40
    for text, kind in codes:
        symbol = barcode(text, kind, 6 if kind == "DataMatrix" else 2)
        label.paste(symbol, (max(0, (width - symbol.width) // 2), top))
        top += symbol.height + 30
    return label.convert("RGB")


def write_svs(path: Path, source: Path, label: Image.Image, size: int = 1024) -> Path:
    """An SVS as Aperio lays one out (tifffile's and opentile's SVS series): a tiled JPEG
    base level cut from *source*'s, a stripped thumbnail, the label (LZW, 'label' in its
    description, NewSubfileType 1) and the macro (JPEG, 'macro', NewSubfileType 9)."""
    with tifffile.TiffFile(source) as tiff:
        base = tiff.pages[0].asarray()[:size, :size]
    height, width = base.shape[:2]
    mpp = "|AppMag = 20|MPP = 0.4990"
    thumbnail = np.asarray(Image.fromarray(base).reduce(4))
    macro = np.asarray(Image.fromarray(base).resize((width // 2, height // 6)))
    label_pixels = np.asarray(label)
    with tifffile.TiffWriter(path) as tiff:  # metadata=None: no tifffile "shaped" tags
        tiff.write(
            base,
            tile=(TILE, TILE),
            compression="jpeg",
            photometric="rgb",
            metadata=None,
            description=f"{APERIO} \r\n{width}x{height} [0,0 {width}x{height}] "
            f"({TILE}x{TILE}) JPEG/RGB Q=90{mpp}",
        )
        tiff.write(
            thumbnail,
            compression="jpeg",
            photometric="rgb",
            metadata=None,
            description=f"{APERIO} \n{width}x{height} -> {thumbnail.shape[1]}x"
            f"{thumbnail.shape[0]} - {mpp}",
        )
        tiff.write(
            label_pixels,
            compression="lzw",
            photometric="rgb",
            metadata=None,
            subfiletype=1,
            description=f"{APERIO} \nlabel {label_pixels.shape[1]}x{label_pixels.shape[0]}",
        )
        tiff.write(
            macro,
            compression="jpeg",
            photometric="rgb",
            metadata=None,
            subfiletype=9,
            description=f"{APERIO} \nmacro {macro.shape[1]}x{macro.shape[0]}",
        )
    return path
