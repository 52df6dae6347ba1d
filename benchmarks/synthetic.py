"""Synthetic WSI instances for benchmarks: a real JPEG-tiled VL WSI Part-10 file of any size,
written tile by tile (never held in memory)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import JPEGBaseline8Bit, generate_uid

WSI_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.6"


def jpeg_tiles(count: int = 24, size: int = 512, seed: int = 7) -> list[bytes]:
    """Distinct JPEG tiles that look a little like tissue (smooth colour fields with noise)."""
    rng = np.random.default_rng(seed)
    tiles = []
    y, x = np.mgrid[0:size, 0:size]
    for index in range(count):
        base = np.stack(
            [
                180 + 50 * np.sin((x + index * 13) / (23 + index)),
                120 + 60 * np.cos((y + index * 7) / (31 + index)),
                190 + 40 * np.sin((x + y) / (41 + index)),
            ],
            axis=-1,
        )
        noisy = base + rng.normal(0, 18, base.shape)
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=92)
        tiles.append(buffer.getvalue())
    return tiles


def write_wsi(path: Path, target_bytes: int, tile_size: int = 512) -> dict:
    """Write a TILED_FULL JPEG-baseline WSI instance of about *target_bytes*; return its UIDs."""
    tiles = jpeg_tiles(size=tile_size)
    mean = sum(len(t) + (len(t) & 1) + 8 for t in tiles) / len(tiles)
    frames = max(1, int(target_bytes / mean))
    columns = int(np.ceil(np.sqrt(frames)))
    rows = int(np.ceil(frames / columns))
    frames = columns * rows

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = WSI_STORAGE
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = WSI_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SM"
    ds.PatientName = "Benchmark^Synthetic"
    ds.PatientID = "BENCH-1"
    ds.StudyDate = "20261123"
    ds.StudyTime = "120000"
    ds.AccessionNumber = "BENCH"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.Rows = ds.Columns = tile_size
    ds.TotalPixelMatrixColumns = columns * tile_size
    ds.TotalPixelMatrixRows = rows * tile_size
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01"
    with open(path, "wb") as fp:
        dcmwrite(fp, ds, enforce_file_format=True)
        # Pixel Data (7FE0,0010) OB, undefined length; empty Basic Offset Table.
        fp.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
        fp.write(struct.pack("<HHI", 0xFFFE, 0xE000, 0))
        for index in range(frames):
            tile = tiles[index % len(tiles)]
            if len(tile) & 1:
                tile += b"\x00"
            fp.write(struct.pack("<HHI", 0xFFFE, 0xE000, len(tile)))
            fp.write(tile)
        fp.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    return {
        "study": ds.StudyInstanceUID,
        "series": ds.SeriesInstanceUID,
        "instance": ds.SOPInstanceUID,
        "frames": frames,
        "size": path.stat().st_size,
    }


SVS_DESCRIPTION = (
    "Aperio Image Library v12.0.15 \r\n{w}x{h} [0,100 {w}x{h}] ({t}x{t}) JPEG/RGB Q=90"
    "|AppMag = 20|MPP = 0.5|ScanScope ID = SYNTHETIC|Date = 11/23/26|Time = 12:00:00"
)


def write_svs(path: Path, target_bytes: int, tile: int = 256, pyramid: bool = True) -> dict:
    """Write an Aperio-style SVS of about *target_bytes* of JPEG tiles (YCbCr 4:2:2, tiles
    encoded once and repeated). With *pyramid*, every 2x level down to one tile is stored, so
    a converter has nothing to generate; without, only the base level and a thumbnail."""
    import tifffile

    tiles = []
    for data in jpeg_tiles(size=tile):
        image = Image.open(io.BytesIO(data))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90, subsampling=1)  # 4:2:2
        tiles.append(buffer.getvalue())
    mean = sum(len(t) for t in tiles) / len(tiles)
    count = max(1, int(target_bytes / mean))
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    width, height = columns * tile, rows * tile

    def level_tiles(w: int, h: int):  # type: ignore[no-untyped-def]
        n = ((w + tile - 1) // tile) * ((h + tile - 1) // tile)
        return (tiles[i % len(tiles)] for i in range(n))

    sizes = [(width, height)]
    while pyramid and (sizes[-1][0] > tile or sizes[-1][1] > tile):
        sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
    thumbnail = np.asarray(Image.open(io.BytesIO(tiles[0])).convert("RGB"))
    options = {
        "compression": "jpeg",
        "photometric": "ycbcr",
        "subsampling": (2, 1),
        "tile": (tile, tile),
        "dtype": np.uint8,
    }
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for number, (w, h) in enumerate(sizes):
            description = SVS_DESCRIPTION.format(w=width, h=height, t=tile)
            if number:
                description = f"Aperio Image Library v12.0.15 \r\n{width}x{height} -> {w}x{h}"
            tif.write(
                level_tiles(w, h),
                shape=(h, w, 3),
                description=description,
                metadata=None,
                subfiletype=0,
                **options,
            )
            if number == 0:
                tif.write(
                    thumbnail,
                    description="Aperio Image Library v12.0.15 \r\nthumbnail",
                    metadata=None,
                    photometric="rgb",
                    compression="jpeg",
                )
    return {"width": width, "height": height, "levels": len(sizes), "size": path.stat().st_size}
