"""Readers of vendor slide formats, tried in order: wsidicomizer's own and the ones here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Formats whose files other readers open but misplace: Ventana BIF keeps overlapping scanner
# tiles side by side and says in its XML how to stitch them; only OpenSlide does (tiffslide
# lays them unstitched, and today fails on BIF only for want of its pixel spacing).
STITCHED_BY_OPENSLIDE = frozenset({"ventana"})


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
        if _openslide_format(path) in STITCHED_BY_OPENSLIDE:
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


def _openslide_format(path: Path) -> str | None:
    """OpenSlide's name for the format of *path* (``ventana``, ``leica``...), None if unknown."""
    import openslide

    try:
        return openslide.OpenSlide.detect_format(str(path))
    except Exception:  # unreadable files are for the readers to reject
        return None
