"""Readers of vendor slide formats, tried in order: wsidicomizer's own and the ones here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Formats whose files other readers open but misplace: Ventana BIF keeps overlapping scanner
# tiles side by side and says in its XML how to stitch them; only OpenSlide does (tiffslide
# lays them unstitched, and today fails on BIF only for want of its pixel spacing).
STITCHED_BY_OPENSLIDE = frozenset({"ventana"})
# Formats whose slides may hold several scanned regions: tiffslide places them but fills the
# space between them with black; OpenSlide leaves it transparent, which the converter makes
# the background colour (white in brightfield).
REGIONS_BY_OPENSLIDE = frozenset({"leica"})


def candidates(path: Path) -> list[Any]:
    """Source classes that claim *path*, most faithful first (tile copying before decoding)."""
    from wsidicomizer.sources import CziSource, OpenTileSource, TiffSlideSource

    from converter.sources.aperio import AperioSource
    from converter.sources.olympus import VsiSource
    from converter.sources.planes import PlanesSource
    from converter.sources.zeiss import ZeissSource

    ordered: list[Any] = [
        VsiSource,
        AperioSource,
        OpenTileSource,
        ZeissSource,
        CziSource,
        TiffSlideSource,
    ]
    try:
        from wsidicomizer.extras.openslide import OpenSlideSource

        ordered.append(OpenSlideSource)
        if _prefers_openslide(path):
            ordered.insert(0, ordered.pop())
    except ImportError:  # OpenSlide missing: MRXS, SCN, BIF and others are not readable
        pass
    ordered.append(PlanesSource)
    found = []
    for source in ordered:
        try:
            if source.is_supported(path):
                found.append(source)
        except Exception:  # a reader that cannot even probe the file does not claim it
            continue
    return found


def _prefers_openslide(path: Path) -> bool:
    """True for slides only OpenSlide reads right: a Ventana BIF, a Leica SCN of several
    scanned regions (OpenSlide's ``openslide.region[1]``)."""
    import openslide

    try:
        found = openslide.OpenSlide.detect_format(str(path))
        if found in STITCHED_BY_OPENSLIDE:
            return True
        if found in REGIONS_BY_OPENSLIDE:
            with openslide.OpenSlide(str(path)) as slide:
                return "openslide.region[1].x" in slide.properties
    except Exception:  # unreadable files are for the readers to reject
        return False
    return False
