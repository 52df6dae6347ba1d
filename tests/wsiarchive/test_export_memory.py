"""A de-identified export streams: exporting a slide instance of 300 MB takes no more memory
than a command that reads nothing (the header is rewritten, the pixel data copied)."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import pydicom
from pydicom.filewriter import dcmwrite

from storage.deid.part10 import read_header
from wsiarchive.cli import main

SOURCE = "dicom/wsi2dcm_raw.dcm"  # a real uncompressed TILED_FULL header, 256 x 256 tiles
TILES = 40  # per side: 1600 frames of 192 KiB, 300 MiB of pixel data
HEADROOM = 64 << 20  # bytes of peak RSS an export may take over the baseline command


def _big_slide(testdata: Path, target: Path) -> None:
    dataset = pydicom.dcmread(testdata / SOURCE, stop_before_pixels=True)
    dataset.TotalPixelMatrixColumns = dataset.TotalPixelMatrixRows = 256 * TILES
    dataset.NumberOfFrames = TILES * TILES
    dataset.PatientName, dataset.PatientID = "Okafor^Adaeze", "MRN-4417-Z"
    frame = 256 * 256 * 3
    with open(target, "wb") as fp:
        dcmwrite(fp, dataset, enforce_file_format=True)
        fp.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, frame * TILES * TILES))
        for number in range(TILES * TILES):
            fp.write(number.to_bytes(4, "big") * (frame // 4))


def _peak_rss(args: list[str]) -> int:
    """Peak resident bytes of `wsiarchive ARGS` run in a process of its own."""
    # VmHWM is this process image's own peak (ru_maxrss would carry the forking parent's).
    code = (
        "import sys; from wsiarchive.cli import main; rc = main(sys.argv[1:]); "
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); "
        "sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1]) * 1024  # Linux: kilobytes


def _pixel_digest(path: Path) -> str:
    _, pixels = read_header(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        fp.seek(pixels.start)
        remaining = pixels.end - pixels.start
        while remaining:
            chunk = fp.read(min(8 << 20, remaining))
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def test_a_300_mb_instance_exports_in_bounded_memory(testdata: Path, tmp_path: Path) -> None:
    slide, data = tmp_path / "big.dcm", tmp_path / "data"
    _big_slide(testdata, slide)
    assert main(["import", str(slide), "--data-dir", str(data)]) == 0
    study = str(pydicom.dcmread(slide, stop_before_pixels=True).StudyInstanceUID)
    baseline = _peak_rss(["migrate", "--status", "--data-dir", str(data)])
    out = tmp_path / "out"
    peak = _peak_rss(["export", study, "--to", str(out), "--data-dir", str(data)])
    assert peak < baseline + HEADROOM < os.path.getsize(slide), (peak, baseline)
    (exported,) = out.rglob("*.dcm")
    assert _pixel_digest(exported) == _pixel_digest(slide)
    assert b"Okafor" not in exported.read_bytes()[:65536]
