"""Converting one slide file: pick a reader, write the DICOM instances, leave nothing partial."""

from __future__ import annotations

import logging
import math
import os
import re
import secrets
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydicom.uid import generate_uid

from converter import fastcopy, label, patches
from converter.concatenation import split_large_instances
from converter.errors import ConversionError
from converter.metadata import SlideInfo
from converter.sources import candidates

log = logging.getLogger(__name__)

# Documented re-encoding (docs/converter.md): tiles whose compression DICOM cannot carry are
# re-encoded as JPEG baseline at this quality with 4:2:2 chroma subsampling; non-RGB and 16-bit
# data as lossless JPEG 2000.
JPEG_QUALITY = 90


@dataclass
class ConversionOptions:
    """How to convert (the what comes from SlideInfo)."""

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    tile_size: int = 512  # for readers that re-tile; native tiles are kept
    jpeg_quality: int = JPEG_QUALITY
    add_missing_levels: bool = True
    include_label: bool = True
    include_overview: bool = True
    include_thumbnail: bool = True
    # Levels whose pixel data exceeds this many bytes are split into a concatenation; 0 never
    # splits (Extended Offset Tables address any size, and dciodvfy's WG26SP2025 profile
    # rejects concatenated TILED_FULL instances).
    max_instance_bytes: int = 0
    progress: Callable[[str], None] | None = None
    # Called with (slide name, tiles done, tiles in all) as the fast path copies tiles.
    tile_progress: Callable[[str, int, int], None] | None = None
    # Copy tiles in one tight loop when nothing is decoded or generated (converter.fastcopy).
    fast_copy: bool = True
    # Refuse a slide lacking the WG-26 specimen facts (anatomy, a preparation step) instead
    # of writing their Type 2 attributes empty (the require_specimen_metadata setting).
    require_specimen_metadata: bool = False
    # Fills the Accession Number from a label barcode: its group "accession" (converter.label).
    barcode_accession_pattern: re.Pattern[str] | None = None
    # Called with each warning about a slide (the specimen facts it lacks); None: logged.
    warn: Callable[[str], None] | None = None


def _encoding_for(wsi: Any, options: ConversionOptions) -> Any:
    """The documented re-encoding for the slide's pixels: JPEG for 8-bit RGB, lossless
    JPEG 2000 for grey-level (fluorescence) and 16-bit data. A source whose tiles are copied
    as JPEG 2000 gets JPEG 2000 for its generated levels too: wsidicom labels every level of
    a slide with one transfer syntax, the encoder's."""
    from pydicom.uid import JPEG2000, JPEG2000Lossless
    from wsidicom.codec import Channels, Jpeg2kSettings, JpegSettings, Subsampling

    if wsi is not None:
        copied = wsi.levels[0].default_instance.image_data.transfer_syntax
        if copied == JPEG2000:
            return Jpeg2kSettings(levels=[80], channels=Channels.YBR)
        if copied == JPEG2000Lossless:
            return Jpeg2kSettings(levels=[0], channels=Channels.YBR)
    mode = wsi.read_tile(0, (0, 0)).mode if wsi is not None else "RGB"
    if mode == "RGB":
        return JpegSettings(quality=options.jpeg_quality, subsampling=Subsampling.R422)
    bits = 16 if mode.startswith("I") else 8
    return Jpeg2kSettings(levels=[0], bits=bits, channels=Channels.GRAYSCALE)


# The file name extensions of the slide formats the readers here convert (docs/converter.md):
# a file with one of them is a slide even when no reader claims it (a damaged one).
SLIDE_SUFFIXES = frozenset(
    {".svs", ".ndpi", ".tif", ".tiff", ".btf", ".mrxs", ".scn", ".bif", ".czi", ".vsi"}
    | {".qptiff", ".vms", ".vmu", ".svslide"}
)


def recognises(path: Path) -> bool:
    """True if some reader here claims *path* as a slide (it may still fail to read it)."""
    return bool(candidates(path))


def named_as_slide(path: Path) -> bool:
    """True if *path* has the extension of a slide format converted here."""
    return path.suffix.lower() in SLIDE_SUFFIXES


def _open(path: Path, info: SlideInfo, options: ConversionOptions, plane: int = 0) -> Any:
    """Open *path* with the first reader that can; raise ConversionError naming each reason.
    *plane*: the focal plane a reader of Z stacks gives (one pyramid per plane)."""

    if not candidates(path):
        raise ConversionError(f"{path}: not a slide format any reader here recognises")
    metadata = info.to_wsidicom()
    reasons: list[str] = []
    # Readers log their own complaints while probing; the reasons are collected below.
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        return _first_reader(path, metadata, options, info, plane, reasons)
    finally:
        logging.disable(previous)


def _first_reader(
    path: Path,
    metadata: Any,
    options: ConversionOptions,
    info: SlideInfo,
    plane: int,
    reasons: list[str],
) -> Any:
    from wsidicomizer import WsiDicomizer

    for candidate in candidates(path):
        source = _configured(candidate, fallback_mpp=info.mpp, plane=plane)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wsi = None
                for _ in range(2):
                    encoding = _encoding_for(wsi, options)
                    if wsi is not None:
                        wsi.close()
                    wsi = WsiDicomizer.open(
                        path,
                        metadata=metadata,
                        tile_size=options.tile_size,
                        encoding=encoding,
                        preferred_source=source,
                    )
                    if not wsi.levels:
                        wsi.close()
                        raise ValueError("no image levels")
                    if repr(_encoding_for(wsi, options)) == repr(encoding):
                        break
            return wsi
        except Exception as exc:  # every reader raises its own kinds
            reasons.append(f"{source.__name__}: {exc}")
    raise ConversionError(f"{path}: cannot be read ({'; '.join(reasons)})")


def _thumbnail_fits(wsi: Any) -> bool:
    """False when the slide's thumbnail would sit on a level of the pyramid: viewers that
    place a THUMBNAIL among the VOLUME images by its zoom factor (dicom-microscopy-viewer in
    OHIF 3) refuse two images of one factor, and a thumbnail of 574 columns beside a level of
    555 is that (3.87 against 4). Levels come in factors of 2 (read or generated), so a
    thumbnail within a tenth of a power of two of the base is left out; the archive renders
    thumbnails from the pyramid anyway (PS3.18 §10.4.1.1.4)."""
    thumbnails = list(getattr(wsi.pyramid, "thumbnails", None) or [])
    if not thumbnails:
        return True
    base = wsi.levels[0].size.width
    factors = [math.log2(base / level.size.width) for level in wsi.levels]
    for thumbnail in thumbnails:
        factor = math.log2(base / thumbnail.size.width)
        if abs(factor - round(factor)) < 0.1 or any(abs(factor - f) < 0.1 for f in factors):
            return False
    return True


def _save(wsi: Any, work: Path, path: Path, options: ConversionOptions) -> list[Path]:
    if options.include_thumbnail and not _thumbnail_fits(wsi):
        options = replace(options, include_thumbnail=False)
    if options.fast_copy and fastcopy.eligible(wsi, options):
        try:
            if options.progress:
                made = len(fastcopy.pyramid.plan(wsi.pyramid, options.add_missing_levels))
                options.progress(
                    f"{path.name}: copying {len(wsi.levels)} levels tile for tile"
                    + (f", generating {made - len(wsi.levels)}" if made > len(wsi.levels) else "")
                )
            return fastcopy.write(wsi, work, options, path.name)
        except Exception as exc:
            raise ConversionError(f"{path}: conversion failed while writing: {exc}") from exc
        finally:
            wsi.close()
    try:
        if options.progress:
            options.progress(f"{path.name}: writing {len(wsi.levels)} levels")
        # An image whose tiles are in another transfer syntax than the slide's encoder (an SVS
        # thumbnail in JPEG beside JPEG 2000 levels) is transcoded rather than mislabelled.
        transcoding = _encoding_for(wsi, options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            written = wsi.save(
                work,
                transcoding=transcoding,
                workers=options.workers,
                offset_table="eot",
                add_missing_levels=options.add_missing_levels,
                include_labels=options.include_label,
                include_overviews=options.include_overview,
                include_thumbnails=options.include_thumbnail,
            )
    except Exception as exc:
        raise ConversionError(f"{path}: conversion failed while writing: {exc}") from exc
    finally:
        wsi.close()
    return [Path(str(p)) for p in written]


def _configured(source: type, **options: object) -> type:
    """The reader class *source* with the options it declares set, as a subclass of its own
    for this conversion: wsidicomizer makes the reader from its class, and setting them on
    the class itself would change every later conversion in the process."""
    declared = {name: value for name, value in options.items() if hasattr(source, name)}
    if not declared:
        return source
    return type(source.__name__, (source,), declared)


Place = Callable[[SlideInfo], SlideInfo]


def convert(
    path: Path,
    output: Path,
    info: SlideInfo,
    options: ConversionOptions | None = None,
    place: Place | None = None,
) -> list[Path]:
    """Convert the slide at *path* into DICOM files in *output*; returns their paths.
    *place*: given the slide's metadata once its label is read, returns it with the study
    it belongs to (the archive's study of its accession number)."""
    patches.apply()
    with patches.conversion_validation():
        return _convert(path, output, info, options or ConversionOptions(), place)


def _check_facts(path: Path, info: SlideInfo, options: ConversionOptions) -> None:
    """Refuse (require_specimen_metadata) or warn about the specimen facts *info* lacks."""
    missing = info.missing_facts()
    if not missing:
        return
    if options.require_specimen_metadata:
        raise ConversionError(
            f"{path}: missing mandatory metadata (require_specimen_metadata is on): "
            + "; ".join(missing)
        )
    text = (
        f"{path.name}: WG-26 specimen facts missing: {'; '.join(missing)}. Converted with "
        "them empty (PS3.3 C.7.6.22, Type 2); the archive finds such slides with "
        "missingspecimenfacts=true"
    )
    if options.warn is not None:
        options.warn(text)
    else:
        log.warning("%s", text)


def _identified(
    path: Path, info: SlideInfo, options: ConversionOptions, place: Place | None
) -> tuple[Any, SlideInfo]:
    """The opened slide and its metadata completed from its label (converter.label) and by
    *place*; the slide is opened again when what it is written with has changed."""
    wsi = _open(path, info, options)
    barcodes: list[label.Barcode] = []
    if not info.container_identifier or (
        not info.accession_number and options.barcode_accession_pattern is not None
    ):
        barcodes = label.slide_barcodes(wsi, path)
    identified, notes = label.identify(info, barcodes, path, options.barcode_accession_pattern)
    for note in notes:
        if options.progress:
            options.progress(f"{path.name}: {note}")
        log.info("%s: %s", path.name, note)
    if place is not None:
        identified = place(identified)
        identified = identified.updated(study_uid=identified.study_uid or generate_uid())
    if identified != info:
        wsi.close()
        wsi = _open(path, identified, options)
    return wsi, identified


def _convert(
    path: Path, output: Path, info: SlideInfo, options: ConversionOptions, place: Place | None
) -> list[Path]:
    """Convert the slide at *path* into DICOM files in *output*; returns their paths.

    The instances are written to a hidden folder inside *output* and moved into place only
    when all of them are complete, so a failure leaves nothing behind.
    """
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    _check_facts(path, info, options)
    output.mkdir(parents=True, exist_ok=True)
    # UIDs fixed up front: every pyramid written for this slide shares them. The study's
    # waits for *place*, which may find the study of the accession the label gives.
    info = info.updated(
        study_uid=info.study_uid or ("" if place else generate_uid()),
        series_uid=info.series_uid or generate_uid(),
        frame_of_reference_uid=info.frame_of_reference_uid or generate_uid(),
    )
    work = output / f".converting-{secrets.token_hex(6)}"
    work.mkdir()
    try:
        written = []
        wsi, info = _identified(path, info, options, place)
        planes = getattr(getattr(wsi, "_source", None), "focal_plane_count", 1)
        for plane in range(planes):
            if plane:
                wsi = _open(path, info, options, plane)
            written += _save(wsi, work, path, options)
        files = split_large_instances(written, options.max_instance_bytes)
        final = []
        for file in files:
            target = output / file.name
            os.replace(file, target)
            final.append(target)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)
