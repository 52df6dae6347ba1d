"""The converter on every real slide in the test data, checked with dciodvfy (WG-26 profile),
opentile, tifffile, OpenSlide and wsidicom as independent readers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests

from converter import ConversionError, ConversionOptions, SlideInfo, convert
from tests.dicomfiles import frames
from tests.inprocess import TESTER

INFO = SlideInfo(
    patient_id="P-CONV",
    patient_name="Doe^Jane",
    accession_number="ACC-CONV",
    container_identifier="SLIDE-1",
    anatomy="SCT:39607008:Lung structure",
    stains=["hematoxylin stain", "water soluble eosin stain"],
    fixative="Formalin",
    embedding="Paraffin wax",
    collection="Biopsy",
    mpp=0.5,
)
SLIDES = [
    "svs/CMU-1-Small-Region.svs",
    "svs/tcga-cr-7395-01a-01-ts1.svs",
    "ndpi/test3-DAPI-2-(387).ndpi",
    "ndpi/test3-TRITC 2 (560).ndpi",
    "czi/aicspylibczi_RGB-8bit.czi",
    "czi/aicspylibczi_mosaic_test.czi",
    "czi/aicspylibczi_tiles.czi",
    "ome-tiff/4D-series.ome.tiff",
    "ome-tiff/libvips_multi-channel-z-series.ome.tif",
    "generic-tiff/large_image_yb10kx5k.zstd.tiff",
    "qptiff/pathml_small_vectra.qptiff",
    "vsi/vsi-ets-test-jpg2k/vsi-ets-test-jpg2k.vsi",
    "tiny-synthetic/openslide-python/boxes.tiff",
    "tiny-synthetic/openslide-python/small.svs",
]
BROKEN = [
    ("svs/histolab_broken.svs", "not a slide format"),
    ("tiny-synthetic/openslide-python/unopenable.tiff", "52479"),
    ("tiny-synthetic/openslide-python/unreadable.svs", "cannot be read"),
]


def dciodvfy_errors(path: Path, profile: str | None = "WG26SP2025") -> list[str]:
    """dciodvfy's errors for *path*, against the WG-26 profile (or, None, the IOD alone)."""
    tool = Path(sys.executable).with_name("dciodvfy")
    chosen = ["-profile", profile] if profile else []
    result = subprocess.run([str(tool), *chosen, str(path)], capture_output=True, text=True)
    return [
        line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")
    ]


@pytest.fixture(scope="module")
def converted(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    root = tmp_path_factory.mktemp("converted")
    for name in SLIDES:
        out[name] = convert(
            testdata / name, root / Path(name).stem, INFO, ConversionOptions(workers=2)
        )
    return out


def read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True)


@pytest.mark.parametrize("name", SLIDES)
def test_every_slide_converts_and_passes_dciodvfy(converted, name: str) -> None:
    files = converted[name]
    assert files, name
    for file in files:
        assert dciodvfy_errors(file) == [], file.name
        # The first frame decodes with the transfer syntax the file declares.
        first = pydicom.pixels.pixel_array(file, index=0)
        assert first.size > 0
        dataset = read(file)
        assert dataset.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.6"
        assert dataset.DimensionOrganizationType == "TILED_FULL"
        assert dataset.ContainerIdentifier == "SLIDE-1"
        assert dataset.PatientID == "P-CONV"
    # One study, series and frame of reference for the slide.
    datasets = [read(f) for f in files]
    assert len({d.StudyInstanceUID for d in datasets}) == 1
    assert len({d.SeriesInstanceUID for d in datasets}) == 1
    assert len({d.FrameOfReferenceUID for d in datasets}) == 1


@pytest.mark.parametrize(("name", "reason"), BROKEN)
def test_broken_files_fail_cleanly(testdata: Path, tmp_path: Path, name: str, reason: str) -> None:
    with pytest.raises(ConversionError) as error:
        convert(testdata / name, tmp_path / "out", INFO)
    assert str(testdata / name) in str(error.value)
    assert reason in str(error.value)
    assert list((tmp_path / "out").iterdir()) == []  # nothing partial left


def test_missing_mandatory_metadata_is_named(testdata: Path, tmp_path: Path) -> None:
    strict = ConversionOptions(require_specimen_metadata=True)
    with pytest.raises(ConversionError) as error:
        convert(testdata / SLIDES[0], tmp_path, SlideInfo(patient_id="P"), strict)
    message = str(error.value)
    for missing in ("require_specimen_metadata", "anatomy", "preparation step"):
        assert missing in message
    with pytest.raises(ConversionError, match="unknown stain 'glitter'"):
        convert(testdata / SLIDES[0], tmp_path, INFO.updated(stains=["glitter"]))
    with pytest.raises(ConversionError, match="did you mean 'hematoxylin stain'"):
        convert(testdata / SLIDES[0], tmp_path, INFO.updated(stains=["hematoxylin,eosin"]))
    # Meanings are matched without regard to case.
    assert INFO.updated(stains=["Hematoxylin Stain"]).to_wsidicom() is not None


def _by_type(files: list[Path]) -> dict[str, list[tuple[pydicom.Dataset, Path]]]:
    found: dict[str, list[tuple[pydicom.Dataset, Path]]] = {}
    for file in files:
        dataset = read(file)
        found.setdefault(dataset.ImageType[2], []).append((dataset, file))
    for items in found.values():
        items.sort(key=lambda item: -int(item[0].TotalPixelMatrixColumns))
    return found


def test_image_types_pyramid_and_icc(converted) -> None:
    kinds = _by_type(converted["svs/CMU-1-Small-Region.svs"])
    # The SVS's thumbnail (574 columns) would sit on the 555-column level: left out, since
    # viewers that put a THUMBNAIL in the pyramid refuse two images of one zoom factor.
    assert {"VOLUME", "LABEL", "OVERVIEW"} <= set(kinds)
    assert "THUMBNAIL" not in kinds
    volumes = [d for d, _ in kinds["VOLUME"]]
    widths = [int(d.TotalPixelMatrixColumns) for d in volumes]
    # Missing levels generated in 2x steps down to a single tile.
    assert widths[0] == 2220
    assert all(a // 2 - 1 <= b <= a // 2 + 1 for a, b in zip(widths, widths[1:], strict=False))
    last = volumes[-1]
    assert int(last.NumberOfFrames) == 1
    for dataset in volumes:
        profile = dataset.OpticalPathSequence[0].ICCProfile
        assert len(profile) > 100  # the source's ICC or sRGB
    assert volumes[0].ImageType[:2] == ["ORIGINAL", "PRIMARY"]
    assert volumes[1].ImageType[3] == "RESAMPLED"


def same_bytes(frames_: list[bytes], tiles: list[bytes]) -> bool:
    """Frames equal tiles byte for byte; an odd-length tile gains the one trailing zero byte
    that even-length fragments need (PS3.5 A.4)."""
    return len(frames_) == len(tiles) and all(
        frame == tile or (len(tile) % 2 == 1 and frame == tile + b"\x00")
        for frame, tile in zip(frames_, tiles, strict=True)
    )


def _opentile_tiles(path: Path) -> list[bytes]:
    from opentile import OpenTile

    with OpenTile.open(path) as tiler:
        level = tiler.get_level(0)
        width, height = level.tiled_size.width, level.tiled_size.height
        return [level.get_tile((x, y)) for y in range(height) for x in range(width)]


@pytest.mark.parametrize("name", ["svs/CMU-1-Small-Region.svs", "ndpi/test3-DAPI-2-(387).ndpi"])
def test_base_level_tiles_are_copied_byte_for_byte(converted, testdata: Path, name: str) -> None:
    base = _by_type(converted[name])["VOLUME"][0][1]
    assert same_bytes(frames(base), _opentile_tiles(testdata / name))


def test_jpeg2000_tiles_are_copied_byte_for_byte(converted, testdata: Path) -> None:
    import tifffile

    base = _by_type(converted["svs/tcga-cr-7395-01a-01-ts1.svs"])["VOLUME"][0][1]
    with tifffile.TiffFile(testdata / "svs/tcga-cr-7395-01a-01-ts1.svs") as tif:
        page = tif.pages[0]
        fh = tif.filehandle
        source = []
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            fh.seek(offset)
            source.append(fh.read(count))
    assert same_bytes(frames(base), source)
    assert read(base).file_meta.TransferSyntaxUID in (
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
    )


VSI = "vsi/vsi-ets-test-jpg2k/vsi-ets-test-jpg2k.vsi"


def _ets_tiles(path: Path) -> dict[tuple[int, ...], bytes]:
    """An ETS file's tiles by their coordinates, read from its tile table as Bio-Formats'
    CellSensReader documents it: the SIS header gives the table's place and its number of
    dimensions; each entry is 4 unused bytes, the coordinates, an 8-byte offset, a 4-byte
    size and 4 unused bytes."""
    import struct

    data = path.read_bytes()
    magic, _, _, dims = struct.unpack_from("<4sIII", data, 0)
    assert magic == b"SIS\0"
    table, count = struct.unpack_from("<QI", data, 32)
    entry = f"<4x{dims}IQI4x"
    tiles = {}
    for index in range(count):
        *coordinates, offset, size = struct.unpack_from(
            entry, data, table + index * (dims * 4 + 20)
        )
        tiles[tuple(coordinates)] = data[offset : offset + size]
    return tiles


def test_vsi_converts_its_ets_image_stack_value_for_value(converted, testdata: Path) -> None:
    """The VSI sample's ETS file holds 2 channels x 11 Z slices of one 1645 x 1682 16-bit
    JPEG 2000 tile each (its "External file volume" is 1645, 1682, 1, 11, 2: coordinates
    x, y, -, z, channel, level). Every focal plane becomes a pyramid whose base level holds
    both channels as optical paths, each value equal to the ETS tile decoded by imagecodecs."""
    import imagecodecs
    from wsidicom import WsiDicom

    files = converted[VSI]
    ets = _ets_tiles(testdata / "vsi/vsi-ets-test-jpg2k/_vsi-ets-test-jpg2k_/stack1/frame_t_0.ets")
    assert len(ets) == 22
    bases = [(d, f) for d, f in _by_type(files)["VOLUME"] if int(d.TotalPixelMatrixColumns) == 1645]
    assert len(bases) == 11
    for dataset, _ in bases:
        assert int(dataset.TotalPixelMatrixRows) == 1682
        assert [p.OpticalPathIdentifier for p in dataset.OpticalPathSequence] == ["C405", "C488"]
        assert dataset.BitsStored == 16
        assert dataset.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"  # lossless
        spacing = dataset.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        assert [round(float(v), 9) for v in spacing] == [0.000108333, 0.000108333]
        assert float(dataset.OpticalPathSequence[0].ObjectiveLensPower) == 60
    with WsiDicom.open(files[0].parent) as wsi:
        planes = sorted(wsi.levels.base_level.focal_planes)
        assert len(planes) == 11
        assert [round(b - a, 6) for a, b in zip(planes, planes[1:], strict=False)] == [1.0] * 10
        for z, plane in enumerate(planes):
            for channel, path in enumerate(["C405", "C488"]):
                region = wsi.read_region((0, 0), 0, (1645, 1682), z=plane, path=path)
                expected = imagecodecs.jpeg2k_decode(ets[(0, 0, 0, z, channel, 0)])
                assert np.array_equal(np.asarray(region), expected), (z, path)


@pytest.mark.parametrize(
    ("name", "planes"), [(VSI, 11), ("ome-tiff/libvips_multi-channel-z-series.ome.tif", 5)]
)
def test_z_stack_planes_are_told_apart(converted, name: str, planes: int) -> None:
    """Each focal plane's pyramid says its own Z Offset in Slide Coordinate System (PS3.3
    C.8.12.9): without it every plane claims focus 0 and a reader sees one plane."""
    from wsidicom import WsiDicom

    files = converted[name]
    with WsiDicom.open(files[0].parent) as wsi:
        assert len(set(wsi.levels.base_level.focal_planes)) == planes


def test_generated_level_matches_a_downsample_of_the_source(converted) -> None:
    from wsidicom import WsiDicom

    files = [f for f in converted["svs/CMU-1-Small-Region.svs"]]
    with WsiDicom.open(files) as slide:
        base = np.asarray(slide.read_region((0, 0), 0, (1024, 1024)), dtype=np.float64)
        level1 = np.asarray(slide.read_region((0, 0), 1, (512, 512)), dtype=np.float64)
    expected = base.reshape(512, 2, 512, 2, 3).mean(axis=(1, 3))
    # Stated tolerance: mean absolute difference under 3 grey levels (JPEG quality 90).
    assert np.abs(level1 - expected).mean() < 3.0


def test_openslide_reads_the_same_region(converted, testdata: Path) -> None:
    import openslide

    files = _by_type(converted["svs/CMU-1-Small-Region.svs"])
    base = files["VOLUME"][0][1]
    original = openslide.OpenSlide(str(testdata / "svs/CMU-1-Small-Region.svs"))
    dicom = openslide.OpenSlide(str(base))
    try:
        assert dicom.dimensions == original.dimensions
        a = np.asarray(original.read_region((500, 700), 0, (700, 600)).convert("RGB"))
        b = np.asarray(dicom.read_region((500, 700), 0, (700, 600)).convert("RGB"))
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2  # same JPEG tiles decoded
    finally:
        original.close()
        dicom.close()


def test_large_levels_become_concatenations(testdata: Path, tmp_path: Path) -> None:
    files = convert(
        testdata / SLIDES[0],
        tmp_path,
        INFO,
        ConversionOptions(
            max_instance_bytes=300_000,
            include_label=False,
            include_overview=False,
            include_thumbnail=False,
        ),
    )
    parts = [
        (read(f), f)
        for f in files
        if "ConcatenationUID" in read(f) and read(f).TotalPixelMatrixColumns == 2220
    ]
    parts.sort(key=lambda item: int(item[0].InConcatenationNumber))
    assert len(parts) >= 3
    assert len({d.ConcatenationUID for d, _ in parts}) == 1
    assert len({d.SOPInstanceUIDOfConcatenationSource for d, _ in parts}) == 1
    assert parts[0][0].ConcatenationFrameOffsetNumber == 0
    total = int(parts[0][0].InConcatenationTotalNumber)
    assert total == len(parts)
    joined = [frame for _, f in parts for frame in frames(f)]
    assert same_bytes(joined, _opentile_tiles(testdata / SLIDES[0]))
    offsets = [int(d.ConcatenationFrameOffsetNumber) for d, _ in parts]
    counts = [int(d.NumberOfFrames) for d, _ in parts]
    assert offsets == [sum(counts[:i]) for i in range(len(counts))]
    # dciodvfy's only complaints are the two rules that make concatenation off by default:
    # the WG-26 profile forbids ConcatenationUID, and it counts every tile in NumberOfFrames.
    for _, file in parts:
        for error in dciodvfy_errors(file):
            assert "ConcatenationUID" in error or "TILED_FULL with Concatenation" in error


def test_import_stores_slides_whole_into_one_study(
    fresh_server, testdata: Path, tmp_path: Path
) -> None:
    from dicomweb_client import DICOMwebClient
    from wsidicom import WsiDicom, WsiDicomWebClient

    from tests.servers import ArchiveServer

    data = tmp_path / "data"
    command = [
        sys.executable,
        "-m",
        "wsiarchive",
        "import",
        "--data-dir",
        str(data),
        "--patient-id",
        "P7",
        "--accession",
        "ACC7",
        "--container-id",
        "SLIDE-7",
        "--anatomy",
        "SCT:39607008:Lung structure",
        "--stain",
        "hematoxylin stain",
    ]
    first = subprocess.run([*command, str(testdata / SLIDES[0])], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(
        [
            *command,
            "--container-id",
            "SLIDE-8",
            str(testdata / "ndpi/test3-DAPI-2-(387).ndpi"),
            str(testdata / "svs/histolab_broken.svs"),
        ],
        capture_output=True,
        text=True,
    )
    assert second.returncode == 1
    assert "histolab_broken.svs: not a slide format" in second.stderr
    # Nothing is left in the staging area: converted instances were renamed into place.
    assert list((data / "blobs" / ".staging").iterdir()) == []
    server = ArchiveServer(data).start()
    try:
        studies = requests.get(server.url + "/studies", params={"AccessionNumber": "ACC7"}).json()
        assert len(studies) == 1  # both slides share the case's study
        study = studies[0]["0020000D"]["Value"][0]
        slides = requests.get(
            server.url + "/instances", params={"ContainerIdentifier": "SLIDE-7"}
        ).json()
        assert len(slides) >= 7  # 5 levels, label, overview (the thumbnail sits on a level)
        series = slides[0]["0020000E"]["Value"][0]
        web = WsiDicomWebClient(DICOMwebClient(server.url))
        with WsiDicom.open_web(web, study, series) as slide:
            region = slide.read_region((0, 0), 0, (256, 256))
            assert region.size == (256, 256)
            assert slide.levels[0].size.width == 2220
    finally:
        server.stop()


def test_watch_folder(testdata: Path, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    shutil.copy(testdata / SLIDES[0], drop / "case1.svs")
    (drop / "case1.json").write_text(
        '{"container_identifier": "SLIDE-W", "anatomy": "SCT:39607008:Lung structure",'
        ' "stains": ["hematoxylin stain"], "patient_id": "PW"}'
    )
    shutil.copy(testdata / "svs/histolab_broken.svs", drop / "broken.svs")
    data = tmp_path / "data"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wsiarchive",
            "watch",
            str(drop),
            "--data-dir",
            str(data),
            "--watch-settle-seconds",
            "0.5",
            "--interval",
            "0.3",
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (drop / "done" / "case1.svs").exists()
    assert (drop / "done" / "case1.json").exists()
    assert (drop / "failed" / "broken.svs").exists()
    reason = (drop / "failed" / "broken.svs.reason.txt").read_text()
    assert "not a slide format" in reason
    assert not (drop / "case1.svs").exists()
    from storage import open_archive
    from storage.dicom.levels import Level
    from storage.query.keys import by_keyword
    from storage.query.search import Search
    from wsiarchive.settings import Settings

    archive = open_archive(Settings(data_dir=str(data)))
    search = Search(Level.INSTANCE, levels={Level.INSTANCE})
    search.where(by_keyword("ContainerIdentifier"), "SLIDE-W")
    assert len(archive.search(search, who=TESTER).results) >= 7  # levels, label, overview


def test_fast_copy_path_writes_what_wsidicom_writes(tmp_path: Path) -> None:
    """A synthetic SVS with every 2x level (nothing to generate) takes the fast path; its
    output equals wsidicom's writer's, header and frames, and passes dciodvfy."""
    from benchmarks.synthetic import write_svs
    from converter import fastcopy

    source = tmp_path / "pyramid.svs"
    write_svs(source, 6_000_000)
    fast = convert(source, tmp_path / "fast", INFO)
    slow = convert(source, tmp_path / "slow", INFO, ConversionOptions(fast_copy=False))

    def by_size(files: list[Path]) -> dict:
        return {(read(f).ImageType[2], int(read(f).TotalPixelMatrixColumns)): f for f in files}

    fast_files, slow_files = by_size(fast), by_size(slow)
    assert sorted(fast_files) == sorted(slow_files)
    assert len(fast_files) >= 6
    skip = {
        "SOPInstanceUID",
        "ContentDate",
        "ContentTime",
        "InstanceNumber",
        "PyramidUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
    }
    for key, fast_file in fast_files.items():
        a, b = read(fast_file), read(slow_files[key])
        assert a.file_meta.TransferSyntaxUID == b.file_meta.TransferSyntaxUID
        assert {e.keyword for e in a} == {e.keyword for e in b}
        for element in a:
            if element.keyword not in skip and element.VR != "SQ":
                assert element.value == b[element.tag].value, element.keyword
        assert frames(fast_file) == frames(slow_files[key])
        assert dciodvfy_errors(fast_file) == []
    assert fastcopy.COPYABLE


def test_levels_generated_on_the_fast_path(testdata: Path, tmp_path: Path) -> None:
    """A slide with levels to generate (CMU-1-Small-Region: the base only, 2220 x 2967, not a
    multiple of its 240-pixel tiles) takes the fast path. Its output has the instances and
    headers wsidicom's writer gives, copied frames byte for byte, and generated levels whose
    pixels match wsidicom's within a stated tolerance, labelled as what they are."""
    from turbojpeg import TJSAMP_422, TJCS_YCbCr, TurboJPEG
    from wsidicom import WsiDicom

    source = testdata / "svs/CMU-1-Small-Region.svs"
    messages: list[str] = []
    fast = convert(source, tmp_path / "fast", INFO, ConversionOptions(progress=messages.append))
    assert "tile for tile, generating 4" in messages[0]
    slow = convert(source, tmp_path / "slow", INFO, ConversionOptions(fast_copy=False))

    def by_size(files: list[Path]) -> dict:
        return {(read(f).ImageType[2], int(read(f).TotalPixelMatrixColumns)): f for f in files}

    fast_files, slow_files = by_size(fast), by_size(slow)
    assert sorted(fast_files) == sorted(slow_files)
    varying = {
        "SOPInstanceUID",
        "ContentDate",
        "ContentTime",
        "InstanceNumber",
        "PyramidUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
        "ExtendedOffsetTable",
        "ExtendedOffsetTableLengths",
    }
    jpeg = TurboJPEG()
    generated = 0
    for key, fast_file in fast_files.items():
        a, b = read(fast_file), read(slow_files[key])
        assert {e.keyword for e in a} == {e.keyword for e in b}
        resampled = a.ImageType[3] == "RESAMPLED"
        # wsidicom labels its generated levels with the copied level's photometric
        # interpretation and compression ratio; ours say what the frames hold.
        own = {"PhotometricInterpretation", "LossyImageCompressionRatio"} if resampled else set()
        for element in a:
            if element.keyword not in varying | own and element.VR != "SQ":
                assert element.value == b[element.tag].value, (key, element.keyword)
        assert dciodvfy_errors(fast_file) == []
        if not resampled:
            if key[0] == "VOLUME":
                assert frames(fast_file) == frames(slow_files[key])
            continue
        generated += 1
        assert a.PhotometricInterpretation == "YBR_FULL_422"
        level_frames = frames(fast_file)
        for frame in level_frames:
            width, height, subsampling, colorspace = jpeg.decode_header(frame)
            assert (width, height) == (a.Columns, a.Rows)
            assert (subsampling, colorspace) == (TJSAMP_422, TJCS_YCbCr)
        uncompressed = len(level_frames) * a.Rows * a.Columns * 3
        stored = sum(len(f) + len(f) % 2 for f in level_frames)
        assert float(a.LossyImageCompressionRatio) == pytest.approx(uncompressed / stored, 0.01)
    assert generated == 4
    with WsiDicom.open(fast) as ours, WsiDicom.open(slow) as theirs:
        for level in ours.levels:
            size = (level.size.width, level.size.height)
            x = np.asarray(ours.read_region((0, 0), level.level, size), dtype=np.float64)
            y = np.asarray(theirs.read_region((0, 0), level.level, size), dtype=np.float64)
            # Stated tolerance: a mean absolute difference under 2 grey levels over the
            # whole level (the scaled IDCT against wsidicom's box filter, both at JPEG q90).
            assert np.abs(x - y).mean() < 2.0, level.level
