"""Rendered and thumbnail resources (PS3.18 §10.4.1.1.3-4, §8.3.5) over real HTTP, checked
against pydicom's own decoding of the stored files and Pillow's reading of the responses."""

from __future__ import annotations

import io
import math
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image, ImageCms
from pydicom.pixels import apply_voi_lut, pixel_array

from tests.dicomfiles import parse_multipart, read

CMU = "dicom/jcupitt-cmu-1-small-region"
LABEL = "dicom/ezwsi_label_test.dcm"
FLUORESCENCE = "dicom/3dhistech-wg26-BPAEC/8_0"
SYNTHETIC = "tiny-synthetic"


def _level(testdata: Path, number: int) -> Path:
    return next((testdata / CMU).glob(f"level-{number}-frames-*.dcm"))


@pytest.fixture(scope="module")
def archive(fresh_server_module, testdata):
    server = fresh_server_module(max_rendered_pixels="4000000")
    files = sorted((testdata / CMU).glob("*.dcm")) + [testdata / LABEL, testdata / FLUORESCENCE]
    files += sorted((testdata / SYNTHETIC).rglob("sm_image*.dcm"))
    server.store([path.read_bytes() for path in files])
    return server


def _url(server, dataset: pydicom.Dataset, level: str = "instance") -> str:
    study = f"{server.url}/studies/{dataset.StudyInstanceUID}"
    if level == "study":
        return study
    series = f"{study}/series/{dataset.SeriesInstanceUID}"
    if level == "series":
        return series
    return f"{series}/instances/{dataset.SOPInstanceUID}"


def _get(url: str, accept: str = "*/*", **params: str) -> requests.Response:
    return requests.get(url, params=params, headers={"Accept": accept})


def _image(response: requests.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


def _stitched(path: Path) -> np.ndarray:
    """The Total Pixel Matrix of a TILED_FULL file, from pydicom's decoding of its tiles."""
    dataset = read(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiles = pixel_array(dataset)
    if tiles.ndim == 3 and dataset.SamplesPerPixel == 1 or tiles.ndim == 2:
        tiles = tiles.reshape((-1, dataset.Rows, dataset.Columns) + tiles.shape[-1:][:0])
    if dataset.SamplesPerPixel > 1 and tiles.ndim == 3:
        tiles = tiles[None]
    across = math.ceil(dataset.TotalPixelMatrixColumns / dataset.Columns)
    down = math.ceil(dataset.TotalPixelMatrixRows / dataset.Rows)
    shape = (down * dataset.Rows, across * dataset.Columns) + tiles.shape[3:]
    canvas = np.zeros(shape, tiles.dtype)
    for index in range(across * down):
        row, column = divmod(index, across)
        canvas[
            row * dataset.Rows : (row + 1) * dataset.Rows,
            column * dataset.Columns : (column + 1) * dataset.Columns,
        ] = tiles[index]
    return canvas[: dataset.TotalPixelMatrixRows, : dataset.TotalPixelMatrixColumns]


def _close(actual: np.ndarray, expected: np.ndarray, mean: float = 1.5, peak: int = 12) -> None:
    """Equal up to the rounding of two JPEG decoders."""
    assert actual.shape == expected.shape
    difference = np.abs(actual.astype(int) - expected.astype(int))
    assert difference.mean() <= mean and difference.max() <= peak, (
        difference.mean(),
        difference.max(),
    )


@pytest.mark.parametrize("viewport", [(300, 200), (50, 400), (1000, 1000), (17, 23)])
def test_viewport_fits_and_keeps_the_aspect_ratio(archive, testdata, viewport) -> None:
    vw, vh = viewport
    for number in (0, 1, 3, 6):
        dataset = read(_level(testdata, number))
        width, height = dataset.TotalPixelMatrixColumns, dataset.TotalPixelMatrixRows
        image = _image(_get(_url(archive, dataset) + "/rendered", viewport=f"{vw},{vh}"))
        scale = min(vw / width, vh / height)
        assert image.size == (max(1, round(width * scale)), max(1, round(height * scale)))
        assert image.format == "JPEG"
        assert image.size[0] == vw or image.size[1] == vh  # as large as the viewport allows


def test_native_size_rendering_equals_the_stored_pixels(archive, testdata) -> None:
    path = _level(testdata, 2)  # 555 x 741 pixels in 4 tiles
    dataset = read(path)
    image = _image(_get(_url(archive, dataset) + "/rendered", "image/png", iccprofile="no"))
    assert image.format == "PNG"
    _close(np.asarray(image.convert("RGB")), _stitched(path))


def test_a_small_viewport_reads_a_small_level(archive, testdata) -> None:
    # Rendering the base level (2220 x 2967) into a 138-pixel-wide viewport reads the level
    # that has just enough pixels (138 x 185) and scales that: the result equals the small
    # level's own pixels scaled the same way, not a scaling of the base level.
    base, small = read(_level(testdata, 0)), read(_level(testdata, 4))
    from_base = _image(_get(_url(archive, base) + "/rendered", "image/png", viewport="138,400"))
    assert from_base.size == (138, 184)
    native = _image(_get(_url(archive, small) + "/rendered", "image/png"))
    assert native.size == (138, 185)
    expected = native.resize((138, 184), Image.Resampling.LANCZOS, reducing_gap=3.0)
    assert np.array_equal(np.asarray(from_base), np.asarray(expected))
    base_scaled = Image.fromarray(_stitched(_level(testdata, 0))).resize(
        (138, 184), Image.Resampling.LANCZOS, reducing_gap=3.0
    )
    assert not np.array_equal(np.asarray(from_base), np.asarray(base_scaled))


def test_region_and_flips(archive, testdata) -> None:
    path = _level(testdata, 1)
    dataset = read(path)
    url = _url(archive, dataset) + "/rendered"
    whole = np.asarray(_image(_get(url, "image/png", iccprofile="no")))
    region = _get(url, "image/png", viewport="120,80,600,700,120,80", iccprofile="no")
    assert np.array_equal(np.asarray(_image(region)), whole[700:780, 600:720])
    flipped = _get(url, "image/png", viewport="120,80,600,700,-120,-80", iccprofile="no")
    assert np.array_equal(np.asarray(_image(flipped)), whole[700:780, 600:720][::-1, ::-1])
    # Elided values keep their commas: sx and sy default to 0.
    corner = _get(url, "image/png", viewport="50,50,,,50,50", iccprofile="no")
    assert np.array_equal(np.asarray(_image(corner)), whole[:50, :50])


def test_frames_render_one_image_each(archive, testdata) -> None:
    path = _level(testdata, 1)
    dataset = read(path)
    url = _url(archive, dataset)
    single = _image(_get(url + "/frames/2/rendered", "image/png", iccprofile="no"))
    assert single.size == (dataset.Columns, dataset.Rows)
    expected = _stitched(path)[: dataset.Rows, dataset.Columns : 2 * dataset.Columns]
    _close(np.asarray(single.convert("RGB")), expected)
    response = _get(url + "/frames/1,3/rendered", 'multipart/related; type="image/jpeg"')
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    assert [headers["content-location"].rsplit("/", 2)[1] for headers, _ in parts] == ["1", "3"]
    assert all(Image.open(io.BytesIO(body)).format == "JPEG" for _, body in parts)


def test_label_renders_like_pydicom_decodes_it(archive, testdata) -> None:
    dataset = read(testdata / LABEL)
    image = _image(_get(_url(archive, dataset) + "/rendered", "image/png"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _close(np.asarray(image.convert("RGB")), pixel_array(dataset))


def test_window_on_grey_images(archive, testdata) -> None:
    path = testdata / FLUORESCENCE
    dataset = read(path)
    url = _url(archive, dataset) + "/frames/1/rendered"
    # 8-bit grey without a VOI in the data set renders as stored.
    unwindowed = np.asarray(_image(_get(url, "image/png")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stored = pixel_array(dataset)[0]
    _close(unwindowed, stored)
    for function in ("linear", "linear-exact", "sigmoid"):
        image = _image(_get(url, "image/png", window=f"60,100,{function}"))
        assert image.mode == "L"
        voi = pydicom.Dataset()
        voi.update(
            {
                "WindowCenter": 60,
                "WindowWidth": 100,
                "VOILUTFunction": function.upper().replace("-", "_"),
                "PhotometricInterpretation": "MONOCHROME2",
                "BitsStored": 8,
                "PixelRepresentation": 0,
            }
        )
        expected = np.clip(np.rint(apply_voi_lut(unwindowed.astype(float), voi)), 0, 255)
        rendered = np.asarray(image)
        assert np.abs(rendered.astype(int) - expected.astype(int)).max() <= 1, function


def test_sixteen_bit_grey_is_scaled_to_its_range(archive, testdata) -> None:
    dataset = read(next((testdata / SYNTHETIC).rglob("sm_image_grayscale.dcm")))
    image = np.asarray(_image(_get(_url(archive, dataset) + "/rendered", "image/png")))
    assert image.dtype == np.uint8 and image.min() == 0 and image.max() == 255


def test_media_types_and_quality(archive, testdata) -> None:
    url = _url(archive, read(_level(testdata, 3))) + "/rendered"
    assert _image(_get(url, "image/png")).format == "PNG"
    assert _image(_get(url, "image/gif", iccprofile="no")).format == "GIF"
    assert _image(_get(url, "image/webp, */*;q=0.8")).format == "JPEG"  # a browser's Accept
    low, high = _get(url, quality="10"), _get(url, quality="95")
    assert len(low.content) < len(high.content)
    assert _get(url, "application/dicom").status_code == 406
    multipart = _get(url, 'multipart/related; type="image/png"')
    assert multipart.headers["Content-Type"].startswith('multipart/related; type="image/png"')


def test_iccprofile(archive, testdata) -> None:
    path = next((testdata / SYNTHETIC).rglob("sm_image.dcm"))
    dataset = read(path)
    stored_profile = bytes(dataset.OpticalPathSequence[0].ICCProfile)
    url = _url(archive, dataset) + "/rendered"
    assert _image(_get(url, "image/png", iccprofile="yes")).info["icc_profile"] == stored_profile
    assert _image(_get(url, "image/jpeg", iccprofile="yes")).info["icc_profile"] == stored_profile
    assert "icc_profile" not in _image(_get(url, "image/png", iccprofile="no")).info
    for value, name in (("srgb", "srgb"), ("adobergb", "adobe"), ("rommrgb", "")):
        profile = _image(_get(url, "image/png", iccprofile=value)).info["icc_profile"]
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
        assert name in description.lower().replace(" ", ""), description
    assert _get(url, "image/gif", iccprofile="yes").status_code == 400


def test_invalid_parameters_are_400(archive, testdata) -> None:
    url = _url(archive, read(_level(testdata, 3)))
    for params in (
        {"viewport": "100"},
        {"viewport": "0,100"},
        {"viewport": "a,b"},
        {"viewport": "10,10,-1,0"},
        {"viewport": "10,10,0,0,0,5"},
        {"viewport": "10,10,99999,0"},
        {"quality": "0"},
        {"quality": "101"},
        {"quality": "high"},
        {"window": "40,400"},
        {"window": "40,400,cubic"},
        {"window": "40,0,linear"},
        {"iccprofile": "cmyk"},
        {"annotation": "everything"},
    ):
        response = _get(url + "/rendered", **params)
        assert response.status_code == 400, params
        assert response.json()["error"]
    assert _get(url + "/thumbnail", viewport="10,10,0,0,5,5").status_code == 400
    assert _get(url + "/thumbnail", quality="50").status_code == 400
    assert _get(url + "/frames/99/rendered").status_code == 404


def test_unsupported_values_get_a_warning(archive, testdata) -> None:
    url = _url(archive, read(_level(testdata, 3))) + "/rendered"
    response = _get(url, annotation="patient,technique")
    assert response.status_code == 200
    assert response.headers["Warning"].startswith("299 ")
    assert "annotation values are not supported: patient,technique" in response.headers["Warning"]
    windowed_colour = _get(url, window="100,50,linear")
    assert windowed_colour.status_code == 200 and "window" in windowed_colour.headers["Warning"]


def test_too_large_without_viewport_is_413(archive, testdata) -> None:
    # The server renders at most 4,000,000 pixels here; the base level is 2220 x 2967.
    url = _url(archive, read(_level(testdata, 0))) + "/rendered"
    response = _get(url)
    assert response.status_code == 413
    assert "viewport" in response.json()["error"]


def test_study_and_series_rendered_give_one_part_per_image(archive, testdata) -> None:
    dataset = read(_level(testdata, 0))
    response = _get(_url(archive, dataset, "series") + "/rendered", viewport="64,64")
    assert response.status_code == 200
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    assert len(parts) == len(list((testdata / CMU).glob("*.dcm")))
    for headers, body in parts:
        assert headers["content-location"].endswith("/rendered")
        assert max(Image.open(io.BytesIO(body)).size) == 64
    assert _get(_url(archive, dataset, "study") + "/rendered", "image/jpeg").status_code == 406


def test_thumbnails(archive, testdata) -> None:
    dataset = read(_level(testdata, 0))
    for level in ("study", "series", "instance"):
        response = _get(_url(archive, dataset, level) + "/thumbnail")
        image = _image(response)
        assert image.format == "JPEG" and max(image.size) == 256, level
        assert response.headers["Content-Type"] == "image/jpeg"
    sized = _image(_get(_url(archive, dataset) + "/thumbnail", viewport="100,100"))
    assert max(sized.size) == 100
    frame = _image(_get(_url(archive, dataset) + "/frames/3/thumbnail", viewport="64,64"))
    assert frame.size == (64, 64)
    # A label shows patient data: no thumbnail of it, and a study of labels only has none.
    label = read(testdata / LABEL)
    response = _get(_url(archive, label) + "/thumbnail")
    assert response.status_code == 404 and "patient" in response.json()["error"]


def test_conditional_requests(archive, testdata) -> None:
    url = _url(archive, read(_level(testdata, 3))) + "/rendered"
    first = _get(url, viewport="100,100")
    assert first.headers["ETag"] and "max-age" in first.headers["Cache-Control"]
    again = requests.get(
        url, params={"viewport": "100,100"}, headers={"If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304 and not again.content
    other = requests.get(
        url, params={"viewport": "90,100"}, headers={"If-None-Match": first.headers["ETag"]}
    )
    assert other.status_code == 200


def test_capabilities_describe_rendered_and_thumbnail_resources(archive, testdata) -> None:
    ids = set()
    root = ET.fromstring(requests.options(archive.url).content)
    for method in root.iter("{http://wadl.dev.java.net/2009/02}method"):
        ids.add(method.get("id"))
    for level in ("Study", "Series", "Instance", "Frames"):
        assert {f"Retrieve{level}Rendered", f"Retrieve{level}Thumbnail"} <= ids
    target = _url(archive, read(_level(testdata, 3))) + "/frames/1/rendered"
    described = requests.options(target, headers={"Accept": "application/json"})
    method = described.json()["application"]["resources"]["resources"][0]["methods"][0]
    names = {param["name"] for param in method["request"]["params"]}
    assert {"viewport", "quality", "window", "iccprofile"} <= names


def _sparse_slide(seed: int = 7, study: str | None = None) -> tuple[bytes, np.ndarray]:
    """A TILED_SPARSE VL WSI instance made here: a 25 x 20 matrix of 10 x 10 tiles, three
    tiles present in an order other than row-major, one absent; and the matrix it shows."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(seed)
    positions = [(10, 10), (0, 0), (20, 0)]  # (x, y) of each frame's top-left pixel
    tiles = [rng.integers(0, 256, (10, 10, 3), dtype=np.uint8) for _ in positions]
    expected = np.full((20, 25, 3), 255, np.uint8)  # absent tiles: white background
    for (x, y), tile in zip(positions, tiles, strict=True):
        expected[y : y + 10, x : x + 10] = tile[: 20 - y, : 25 - x]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.6"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study or generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "SPARSE", "Sparse^Slide", "SM"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.DimensionOrganizationType = "TILED_SPARSE"
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = 25, 20
    ds.Rows = ds.Columns = 10
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.NumberOfFrames = len(tiles)
    frames_ = []
    for x, y in positions:
        plane = Dataset()
        plane.ColumnPositionInTotalImagePixelMatrix = x + 1
        plane.RowPositionInTotalImagePixelMatrix = y + 1
        item = Dataset()
        item.PlanePositionSlideSequence = [plane]
        frames_.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames_
    ds.PixelData = b"".join(tile.tobytes() for tile in tiles)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue(), expected


def test_tiled_sparse_slides_render_tiles_where_they_are(archive) -> None:
    data, expected = _sparse_slide()
    archive.store([data])
    dataset = pydicom.dcmread(io.BytesIO(data))
    image = _image(_get(_url(archive, dataset) + "/rendered", "image/png", iccprofile="no"))
    assert image.size == (25, 20)
    assert np.array_equal(np.asarray(image), expected)


def test_study_rendered_reads_each_slide_from_its_own_series(archive) -> None:
    # Two slides of the same size in two series of one study: each part of the study's
    # rendered resource shows its own slide, never a same-shaped image of the other series.
    from pydicom.uid import generate_uid

    study = generate_uid()
    slides = [_sparse_slide(seed, study) for seed in (11, 12)]
    archive.store([data for data, _ in slides])
    expected = {pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID: pixels for data, pixels in slides}
    response = _get(
        f"{archive.url}/studies/{study}/rendered",
        'multipart/related; type="image/png"',
        viewport="25,20",
        iccprofile="no",
    )
    assert response.status_code == 200, response.text
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    assert len(parts) == 2
    for headers, body in parts:
        instance = headers["content-location"].split("/instances/")[1].split("/")[0]
        shown = np.asarray(Image.open(io.BytesIO(body)))
        assert np.array_equal(shown, expected[instance]), instance
