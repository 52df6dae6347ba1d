"""Writers of small vendor slides in Philips, 3DHISTECH, Leica and Ventana layouts, real pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

TILE = 256
# Base level pixel spacing of the written slides, in millimetres (0.5 µm per pixel).
SPACING_MM = 0.0005


def source_region(svs: Path, width: int = 1024, height: int = 768) -> np.ndarray:
    """The top-left *width* x *height* RGB pixels of a real slide's base level."""
    with tifffile.TiffFile(svs) as tiff:
        base = tiff.series[0].levels[0].asarray()
    return np.ascontiguousarray(base[:height, :width, :3])


def write_tiled(tiff: tifffile.TiffWriter, page: np.ndarray, **tags: object) -> None:
    """One RGB page in TILE x TILE JPEG tiles (quality 95), as slide scanners write levels;
    *tags* are the page's own (description, resolution...)."""
    tiff.write(
        page,
        tile=(TILE, TILE),
        compression="jpeg",
        compressionargs={"level": 95},
        photometric="rgb",
        metadata=None,
        **tags,  # type: ignore[arg-type]
    )


def pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """*image* and its 2x box-filtered downsamples."""
    out = [image]
    for _ in range(levels - 1):
        prev = out[-1].astype(np.float32)
        h, w = prev.shape[0] // 2 * 2, prev.shape[1] // 2 * 2
        prev = prev[:h, :w]
        down = (prev[0::2, 0::2] + prev[1::2, 0::2] + prev[0::2, 1::2] + prev[1::2, 1::2]) / 4
        out.append(np.round(down).astype(np.uint8))
    return out


UINT = "IUInt32"


def _philips_attribute(name: str, value: str, pmsvr: str = "IString") -> str:
    return f'<Attribute Name="{name}" PMSVR="{pmsvr}">{value}</Attribute>'


def philips_description(levels: list[np.ndarray]) -> str:
    """The Philips DP XML (DPUfsImport) with one PixelDataRepresentation per level."""
    representations = "".join(
        '<DataObject ObjectType="PixelDataRepresentation">'
        + _philips_attribute(
            "DICOM_PIXEL_SPACING",
            f'"{SPACING_MM * 2**index:.6g}" "{SPACING_MM * 2**index:.6g}"',
            "IDoubleArray",
        )
        + _philips_attribute("PIIM_PIXEL_DATA_REPRESENTATION_NUMBER", str(index), UINT)
        + _philips_attribute(
            "PIIM_PIXEL_DATA_REPRESENTATION_COLUMNS", str(level.shape[1]), "IUInt32"
        )
        + _philips_attribute("PIIM_PIXEL_DATA_REPRESENTATION_ROWS", str(level.shape[0]), UINT)
        + "</DataObject>"
        for index, level in enumerate(levels)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" ?>'
        '<DataObject ObjectType="DPUfsImport">'
        + _philips_attribute("DICOM_MANUFACTURER", "PHILIPS")
        + _philips_attribute("DICOM_SOFTWARE_VERSIONS", '"1.0"', "IStringArray")
        + _philips_attribute("DICOM_DEVICE_SERIAL_NUMBER", "TEST-1")
        + '<Attribute Name="PIM_DP_SCANNED_IMAGES" PMSVR="IDataObjectArray"><Array>'
        '<DataObject ObjectType="DPScannedImage">'
        + _philips_attribute("PIM_DP_IMAGE_TYPE", "WSI")
        + _philips_attribute(
            "DICOM_LOSSY_IMAGE_COMPRESSION_METHOD", '"ISO_10918_1"', "IStringArray"
        )
        + '<Attribute Name="PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE" PMSVR="IDataObjectArray">'
        f"<Array>{representations}</Array></Attribute>"
        "</DataObject></Array></Attribute></DataObject>"
    )


def write_philips(path: Path, image: np.ndarray, levels: int = 3) -> Path:
    """A Philips TIFF: tiled JPEG pyramid pages, the DP XML in the first ImageDescription."""
    pages = pyramid(image, levels)
    with tifffile.TiffWriter(path) as tiff:
        for index, level in enumerate(pages):
            write_tiled(
                tiff,
                level,
                description=philips_description(pages) if index == 0 else None,
                software="Philips DP v1.0",
            )
    return path


XMLPACKET = 700  # TIFF tag XMLPacket (XMP), where Ventana keeps its XML


def _xml_tag(xml: str) -> tuple[int, str, int, bytes, bool]:
    data = xml.encode()
    return (XMLPACKET, "B", len(data), data, True)


def ventana_encode_info(across: int, down: int, overlap: int) -> str:
    """Level 0's EncodeInfo: one scanned area of *across* x *down* tiles that overlap their
    right and upper neighbours by *overlap* pixels."""
    return _encode_info([(across, down, 0, 0)], overlap)


def _encode_info(areas: list[tuple[int, int, int, int]], overlap: int) -> str:
    """EncodeInfo for scanned areas, each (tiles across, tiles down, first tile column of the
    stored mosaic, x of the area in the stitched image); every area's top at y 0 (Pos-Y is
    the distance from an area's bottom to a line below all areas)."""
    infos, origins, column = "", "", 0
    for index, (across, down, column, x) in enumerate(areas):
        # Tiles are numbered from 1, rows from the bottom, every other row right to left.
        joints = (
            f'<TileJointInfo Tile1="1" Tile2="2" Direction="RIGHT" OverlapX="{overlap}"'
            f' OverlapY="0" Confidence="100" FlagJoined="1"/>'
            f'<TileJointInfo Tile1="1" Tile2="{2 * across}" Direction="UP" OverlapX="0"'
            f' OverlapY="{overlap}" Confidence="100" FlagJoined="1"/>'
        )
        infos += (
            f'<ImageInfo AOIScanned="1" AOIIndex="{index}" Width="{TILE}" Height="{TILE}"'
            f' NumRows="{down}" NumCols="{across}" Pos-X="{x}" Pos-Y="0">{joints}</ImageInfo>'
        )
        origins += f'<AOI{index} OriginX="{column * TILE}" OriginY="0"/>'
    return (
        '<?xml version="1.0" encoding="utf-8"?><EncodeInfo Ver="2"><SlideStitchInfo>'
        f"{infos}</SlideStitchInfo><AoiOrigin>{origins}</AoiOrigin></EncodeInfo>"
    )


def ventana_mosaic(image: np.ndarray, overlap: int) -> np.ndarray:
    """The scanner's raw tiles of *image*, each *overlap* pixels into its neighbours, laid
    side by side as a BIF level 0 stores them (the XML says how to stitch them back)."""
    step = TILE - overlap
    across = (image.shape[1] - overlap) // step
    down = (image.shape[0] - overlap) // step
    mosaic = np.empty((down * TILE, across * TILE, 3), np.uint8)
    for row in range(down):
        for col in range(across):
            tile = image[row * step : row * step + TILE, col * step : col * step + TILE]
            mosaic[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE] = tile
    return mosaic


def write_ventana(path: Path, image: np.ndarray, levels: int = 3, overlap: int = 16) -> Path:
    """A Ventana BIF: iScan XMP on the label page, then ``level=N mag=M`` tiled JPEG levels of
    overlapping scanner tiles; stitched, level 0 is the top-left of *image*."""
    mosaic = ventana_mosaic(image, overlap)
    encode_info = ventana_encode_info(mosaic.shape[1] // TILE, mosaic.shape[0] // TILE, overlap)
    return _write_bif(path, mosaic, encode_info, levels)


# Where write_ventana_areas puts its second scanned area in the stitched image (pixels from
# the first area's left edge); the first is the left half of the image, the second the right.
VENTANA_SECOND_AREA_X = 600


def write_ventana_areas(path: Path, image: np.ndarray, levels: int = 2, overlap: int = 16) -> Path:
    """A Ventana BIF of two scanned areas: the left and right halves of *image*, their tile
    blocks side by side in the stored mosaic, stitched VENTANA_SECOND_AREA_X apart."""
    half = image.shape[1] // 2
    left, right = ventana_mosaic(image[:, :half], overlap), ventana_mosaic(image[:, half:], overlap)
    across = left.shape[1] // TILE
    down = left.shape[0] // TILE
    areas = [(across, down, 0, 0), (across, down, across, VENTANA_SECOND_AREA_X)]
    mosaic = np.concatenate([left, right], axis=1)
    return _write_bif(path, mosaic, _encode_info(areas, overlap), levels)


def _write_bif(path: Path, mosaic: np.ndarray, encode_info: str, levels: int) -> Path:
    pages = pyramid(mosaic, levels)
    iscan = (
        '<?xml version="1.0" encoding="utf-8"?><iScan Magnification="20"'
        f' ScanRes="{SPACING_MM * 1000}" Z-layers="1" UnitNumber="TEST-1" BuildVersion="1.0"/>'
    )
    label = np.full((64, 128, 3), 255, np.uint8)
    with tifffile.TiffWriter(path, bigtiff=True) as tiff:
        tiff.write(
            label,
            photometric="rgb",
            description="Label Image",
            extratags=[_xml_tag(iscan)],
            metadata=None,
        )
        for index, level in enumerate(pages):
            write_tiled(
                tiff,
                level,
                description=f"level={index} mag={20 / 2**index:g} quality=95",
                extratags=[_xml_tag(encode_info)] if index == 0 else [],
            )
    return path


LEICA_NS = "http://www.leica-microsystems.com/scn/2010/10/01"
NM_PER_MM = 1_000_000


def _leica_image(
    name: str,
    pages: list[np.ndarray],
    first_ifd: int,
    spacing_mm: float,
    offset_nm: tuple[int, int] = (0, 0),
) -> str:
    dimensions = "".join(
        f'<dimension sizeX="{page.shape[1]}" sizeY="{page.shape[0]}" r="{index}"'
        f' ifd="{first_ifd + index}"/>'
        for index, page in enumerate(pages)
    )
    width_nm = round(pages[0].shape[1] * spacing_mm * NM_PER_MM)
    height_nm = round(pages[0].shape[0] * spacing_mm * NM_PER_MM)
    return (
        f'<image name="{name}" uuid="urn:uuid:{name}">'
        "<creationDate>2026-01-01T00:00:00.00Z</creationDate>"
        '<device model="Leica SCN400;Leica SCN" version="1.5.0.0;1.5.0.0"/>'
        f'<pixels sizeX="{pages[0].shape[1]}" sizeY="{pages[0].shape[0]}">{dimensions}</pixels>'
        f'<view sizeX="{width_nm}" sizeY="{height_nm}" offsetX="{offset_nm[0]}"'
        f' offsetY="{offset_nm[1]}"/>'
        "<scanSettings><objectiveSettings><objective>20</objective></objectiveSettings>"
        "<illuminationSettings><numericalAperture>0.4</numericalAperture>"
        "<illuminationSource>brightfield</illuminationSource></illuminationSettings>"
        "</scanSettings></image>"
    )


def write_leica(path: Path, image: np.ndarray, levels: int = 3) -> Path:
    """A Leica SCN: BigTIFF, the scn XML (a macro image and the main image) in page 0."""
    return _write_scn(path, image, [(image, (0, 0))], levels)


# Where write_leica_regions places its two regions on the slide (nm from the macro's corner)
# and how it cuts them from the image: the left and right halves, 188 pixels apart.
LEICA_REGIONS_NM = ((50_000, 100_000), (400_000, 150_000))


def write_leica_regions(path: Path, image: np.ndarray, levels: int = 2) -> Path:
    """A Leica SCN of two scanned regions (two main images placed by their views): the left
    and right halves of *image* at LEICA_REGIONS_NM."""
    half = image.shape[1] // 2
    mains = [(image[:, :half], LEICA_REGIONS_NM[0]), (image[:, half:], LEICA_REGIONS_NM[1])]
    return _write_scn(path, image, mains, levels)


def _write_scn(
    path: Path, image: np.ndarray, mains: list[tuple[np.ndarray, tuple[int, int]]], levels: int
) -> Path:
    macro = pyramid(image, 4)[-1]
    # The macro shows the whole slide, twice the scanned area: its view is the collection.
    macro_spacing = 2 * SPACING_MM * image.shape[1] / macro.shape[1]
    width_nm = round(macro.shape[1] * macro_spacing * NM_PER_MM)
    height_nm = round(macro.shape[0] * macro_spacing * NM_PER_MM)
    pages: list[tuple[np.ndarray, float]] = [(macro, macro_spacing)]
    images = _leica_image("macro", [macro], 0, macro_spacing)
    for index, (main, offset) in enumerate(mains):
        levels_ = pyramid(main, levels)
        name = "main" if len(mains) == 1 else f"main-{index + 1}"
        images += _leica_image(name, levels_, len(pages), SPACING_MM, offset)
        pages += [(level, SPACING_MM * 2**step) for step, level in enumerate(levels_)]
    xml = (
        f'<?xml version="1.0" encoding="utf-8"?><scn xmlns="{LEICA_NS}">'
        f'<collection name="test" uuid="urn:uuid:collection" sizeX="{width_nm}"'
        f' sizeY="{height_nm}"><barcode>TEST-1</barcode>' + images + "</collection></scn>"
    )
    with tifffile.TiffWriter(path, bigtiff=True) as tiff:
        for index, (page, spacing_mm) in enumerate(pages):
            per_cm = 10 / spacing_mm  # Leica writes each page's resolution, in centimetres
            write_tiled(
                tiff,
                page,
                resolution=(per_cm, per_cm),
                resolutionunit="CENTIMETER",
                description=xml if index == 0 else None,
            )
    return path


def histech_description(mpp: float) -> str:
    """A 3DHISTECH TIFF page description: ``|``-separated ``key = value`` items after a header."""
    return f"3DHISTECH TIFF|3dh_PixelSizeX = {mpp:g}|3dh_PixelSizeY = {mpp:g}|MPP = {mpp:g}"


def write_3dhistech(path: Path, image: np.ndarray, levels: int = 3) -> Path:
    """A 3DHISTECH TIFF: tiled JPEG pages, the base and its 2x reductions (NewSubfileType
    reduced-resolution), each description giving its own MPP."""
    pages = pyramid(image, levels)
    with tifffile.TiffWriter(path) as tiff:
        for index, level in enumerate(pages):
            write_tiled(
                tiff,
                level,
                subfiletype=1 if index else 0,
                description=histech_description(SPACING_MM * 1000 * 2**index),
            )
    return path


def _mrxs_images(level: np.ndarray, concat: int) -> list[tuple[int, np.ndarray]]:
    """A MIRAX level cut into TILE-square images, each keyed by the index of the level-0 image
    at its top left (IMAGENUMBER_X wide); the edges are padded with white."""
    across0 = -(-level.shape[1] * concat // TILE)
    out = []
    for row in range(-(-level.shape[0] // TILE)):
        for col in range(-(-level.shape[1] // TILE)):
            image = np.full((TILE, TILE, 3), 255, np.uint8)
            part = level[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE]
            image[: part.shape[0], : part.shape[1]] = part
            out.append(((row * concat) * across0 + col * concat, image))
    return out


def _mrxs_index(slide_id: str, levels: list[list[tuple[int, int, int]]], nonhier: int) -> bytes:
    """Index.dat: version and slide id, then the hierarchical and non-hierarchical roots. The
    hierarchical root points at one pointer per zoom level, each at a 0 and a pointer to one
    data page (count, next page 0, records of image number, offset, length, file 0). The
    non-hierarchical root points at one pointer per record (here the position buffer at
    data-file offset *nonhier*), each at a 0 and a pointer to a page of one record."""
    head = b"01.02" + slide_id.encode()
    roots = len(head)
    hier_table = roots + 8
    nonhier_table = hier_table + 4 * len(levels)
    blocks_at = nonhier_table + 4
    # The position record: a 0, a pointer to its page; the page: 1, three zeroes (the first
    # is sometimes 1253 in real slides), then offset, length and file of the buffer.
    nonhier_block = [0, blocks_at + 8, 1, 0, 0, 0, nonhier, -1, 0]
    words = [hier_table, nonhier_table]
    level_blocks: list[int] = []
    pointers = []
    at = blocks_at + 4 * len(nonhier_block)
    for records in levels:
        pointers.append(at + 4 * len(level_blocks))
        start = pointers[-1]
        level_blocks += [0, start + 8, len(records), 0]
        for number, offset, length in records:
            level_blocks += [number, offset, length, 0]
    words += pointers + [blocks_at] + nonhier_block + level_blocks
    return head + np.array(words, "<i4").tobytes()


def write_mrxs(path: Path, image: np.ndarray, levels: int = 3, overlap: int = 16) -> Path:
    """A 3DHISTECH MIRAX slide: *path* (``.mrxs``) beside a folder holding Slidedat.ini,
    Index.dat and one data file of JPEG camera images (one TILE square each, overlapping their
    neighbours by *overlap* pixels) and the VIMSLIDE_POSITION_BUFFER that places them. Higher
    levels are 2x2 concatenations of the level below, downsampled, as the scanner writes
    them; stitched, level 0 is the top-left of *image*."""
    import imagecodecs

    folder = path.with_suffix("")
    folder.mkdir()
    path.write_bytes(b"")
    slide_id = "00000000-0000-0000-0000-000000000001"
    mosaic = ventana_mosaic(image, overlap)
    across, down = mosaic.shape[1] // TILE, mosaic.shape[0] // TILE
    data = bytearray()
    entries: list[list[tuple[int, int, int]]] = []
    for index, level in enumerate(pyramid(mosaic, levels)):
        records = []
        for number, picture in _mrxs_images(level, 2**index):
            encoded = imagecodecs.jpeg_encode(picture, level=95)
            records.append((number, len(data), len(encoded)))
            data += encoded
        entries.append(records)
    step = TILE - overlap
    positions = b"".join(
        b"\x01" + np.array([col * step, row * step], "<i4").tobytes()
        for row in range(down)
        for col in range(across)
    )
    buffer_at = len(data)
    data += positions
    (folder / "Data0000.dat").write_bytes(bytes(data))
    index = bytearray(_mrxs_index(slide_id, entries, buffer_at))
    # The buffer's length, left as -1 above.
    length_at = index.find(np.array([buffer_at, -1], "<i4").tobytes()) + 4
    index[length_at : length_at + 4] = np.array([len(positions)], "<i4").tobytes()
    (folder / "Index.dat").write_bytes(bytes(index))
    mpp = SPACING_MM * 1000
    lines = [
        "[GENERAL]",
        "SLIDE_VERSION=01.02",
        f"SLIDE_ID={slide_id}",
        f"IMAGENUMBER_X={across}",
        f"IMAGENUMBER_Y={down}",
        "OBJECTIVE_MAGNIFICATION=20",
        "CameraImageDivisionsPerSide=1",
        "[HIERARCHICAL]",
        "HIER_COUNT=1",
        "HIER_0_NAME=Slide zoom level",
        f"HIER_0_COUNT={levels}",
        *(f"HIER_0_VAL_{i}=ZoomLevel_{i}" for i in range(levels)),
        *(f"HIER_0_VAL_{i}_SECTION=LAYER_0_LEVEL_{i}_SECTION" for i in range(levels)),
        "NONHIER_COUNT=1",
        "NONHIER_0_NAME=VIMSLIDE_POSITION_BUFFER",
        "NONHIER_0_COUNT=1",
        "NONHIER_0_VAL_0=default",
        "NONHIER_0_VAL_0_SECTION=NONHIERLAYER_0_SECTION",
        "INDEXFILE=Index.dat",
        "[NONHIERLAYER_0_SECTION]",
        "VIMSLIDE_POSITION_DATA_FORMAT_VERSION=257",
        "[DATAFILE]",
        "FILE_COUNT=1",
        "FILE_0=Data0000.dat",
    ]
    for i in range(levels):
        lines += [
            f"[LAYER_0_LEVEL_{i}_SECTION]",
            f"OVERLAP_X={overlap}",
            f"OVERLAP_Y={overlap}",
            f"MICROMETER_PER_PIXEL_X={mpp * 2**i:g}",
            f"MICROMETER_PER_PIXEL_Y={mpp * 2**i:g}",
            "IMAGE_FORMAT=JPEG",
            "IMAGE_FILL_COLOR_BGR=16777215",
            f"DIGITIZER_WIDTH={TILE}",
            f"DIGITIZER_HEIGHT={TILE}",
            f"IMAGE_CONCAT_FACTOR={0 if i == 0 else 1}",
        ]
    (folder / "Slidedat.ini").write_text("\n".join(lines) + "\n")
    return path
