"""Who a slide is, from its label: the barcodes printed on it (1D and 2D, read by zxing-cpp),
else its file name.

Precedence, for each value (docs/converter.md): what was typed (flags, --metadata, a sidecar,
slide_metadata) wins; then the label's barcode; then, for the slide identifier only, the file
name. The Container Identifier (0040,0512) is Type 1 in the Specimen Module (PS3.3
C.7.6.22), so a slide always gets one."""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from converter.errors import ConversionError
from converter.metadata import SlideInfo

log = logging.getLogger(__name__)

ACCESSION_GROUP = "accession"  # the named group of barcode_accession_pattern
CONTAINER_LIMIT = 64  # Container Identifier is LO: 64 characters
ACCESSION_LIMIT = 16  # Accession Number is SH: 16 characters


@dataclass(frozen=True)
class Barcode:
    """One barcode read from a label image: its symbology and its text."""

    format: str
    text: str
    matrix: bool  # a 2D symbology (DataMatrix, QR, Aztec, PDF417...)
    top: int
    left: int


def accession_pattern(text: str) -> re.Pattern[str] | None:
    """The compiled barcode_accession_pattern (None when empty); ValueError names the fault."""
    if not text:
        return None
    try:
        pattern = re.compile(text)
    except re.error as exc:
        message = f"barcode_accession_pattern {text!r} is no regular expression: {exc}"
        raise ValueError(message) from exc
    if ACCESSION_GROUP not in pattern.groupindex:
        raise ValueError(
            f"barcode_accession_pattern {text!r} needs a named group (?P<{ACCESSION_GROUP}>...)"
        )
    return pattern


def read_barcodes(image: Image.Image) -> list[Barcode]:
    """Every barcode zxing-cpp decodes in *image*, 2D symbols first, then from the top left."""
    import zxingcpp

    matrix = zxingcpp.barcode_formats_list(
        zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.AllMatrix)
    )
    found = []
    for result in zxingcpp.read_barcodes(image.convert("L")):
        if not result.valid or not result.text.strip():
            continue
        corners = [result.position.top_left, result.position.top_right]
        corners += [result.position.bottom_left, result.position.bottom_right]
        found.append(
            Barcode(
                format=str(result.format),
                text=result.text.strip(),
                matrix=result.format in matrix,
                top=min(p.y for p in corners),
                left=min(p.x for p in corners),
            )
        )
    return sorted(found, key=lambda b: (not b.matrix, b.top, b.left))


def label_images(wsi: Any) -> list[Image.Image]:
    """The slide's label image(s), then its overview (macro), which shows the label too."""
    labels = [wsi.read_label(index) for index in range(len(wsi.labels or []))]
    return labels + [wsi.read_overview(index) for index in range(len(wsi.overviews or []))]


def slide_barcodes(wsi: Any, path: Path) -> list[Barcode]:
    """The barcodes of the first of the slide's label images that has any."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            images = label_images(wsi)
    except Exception as exc:  # every reader raises its own kinds for a damaged label
        log.info("%s: the label image cannot be read (%s)", path.name, exc)
        return []
    for image in images:
        found = read_barcodes(image)
        if found:
            return found
    return []


def identify(
    info: SlideInfo, barcodes: list[Barcode], path: Path, pattern: re.Pattern[str] | None
) -> tuple[SlideInfo, list[str]]:
    """*info* with the slide identifier and accession number filled where it has none (by
    the precedence above), and one note per value taken from the label or the file name."""
    notes = []
    container = info.container_identifier
    if not container and barcodes:
        container = barcodes[0].text[:CONTAINER_LIMIT]
        notes.append(f"slide identifier {container!r} from the label's {barcodes[0].format}")
    if not container:
        container = path.stem[:CONTAINER_LIMIT]
        notes.append(f"slide identifier {container!r} from the file name (no barcode read)")
    accession = info.accession_number
    if not accession and pattern is not None:
        for barcode in barcodes:
            match = pattern.search(barcode.text)
            if match and match.group(ACCESSION_GROUP):
                accession = match.group(ACCESSION_GROUP)
                if len(accession) > ACCESSION_LIMIT:
                    raise ConversionError(
                        f"{path}: the accession number {accession!r} read from the label "
                        f"is longer than {ACCESSION_LIMIT} characters (SH)"
                    )
                notes.append(f"accession number {accession!r} from the label's {barcode.format}")
                break
    return info.updated(container_identifier=container, accession_number=accession), notes
