"""How to convert, from the settings: one place for every command and queue that converts."""

from __future__ import annotations

import os
import sys

from converter import ConversionOptions, patches
from converter.label import accession_pattern
from wsiarchive.settings import Settings


def conversion_options(settings: Settings, interactive: bool = True) -> ConversionOptions:
    """The converter's options; its process-wide corrections are applied here, at the start
    of every command that converts. *interactive*: report on stderr (a progress bar on a
    terminal)."""
    patches.apply()
    return ConversionOptions(
        workers=settings.convert_workers or os.cpu_count() or 1,
        max_instance_bytes=settings.max_instance_bytes,
        require_specimen_metadata=settings.require_specimen_metadata,
        barcode_accession_pattern=accession_pattern(settings.barcode_accession_pattern),
        progress=(lambda text: print(text, file=sys.stderr)) if interactive else None,
        tile_progress=_progress_bar if interactive and sys.stderr.isatty() else None,
    )


def _progress_bar(name: str, done: int, total: int) -> None:
    """One line on the terminal, redrawn in place: name, bar, tiles, percentage."""
    fraction = done / total if total else 1.0
    filled = int(30 * fraction)
    bar = "#" * filled + "-" * (30 - filled)
    end = "\n" if done >= total else ""
    print(f"\r{name[:40]} [{bar}] {done}/{total} tiles {fraction:4.0%}", end=end, file=sys.stderr)
