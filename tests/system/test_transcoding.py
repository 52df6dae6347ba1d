"""Transcoding on retrieval (PS3.18 §8.7.3): frames and whole instances of every stored
transfer syntax in the test data, asked for in another one, decode to the same pixels.

The pixels the server sends are decoded by pydicom's own decoders (pylibjpeg, pyjpegls, its RLE
codec), which share no code with the server's imagecodecs path, except JPEG XL, which only
imagecodecs reads here.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
import requests
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder, pixel_array

from tests.conftest import dicom_files
from tests.dicomfiles import frames, parse_multipart, read

LOSSLESS_TARGETS = {
    "1.2.840.10008.1.2.1": "application/octet-stream",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.110": "image/jxl",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
NATIVE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")
LOSSY_STORED = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.91"}


def _representatives() -> list[Path]:
    """One file per (stored transfer syntax, photometric interpretation, bits, samples)."""
    chosen: dict[tuple, Path] = {}
    for path in dicom_files():
        dataset = read(path)
        if "PixelData" not in dataset or dataset.BitsAllocated == 1:
            continue
        key = (
            str(dataset.file_meta.TransferSyntaxUID),
            dataset.PhotometricInterpretation,
            dataset.BitsAllocated,
            dataset.SamplesPerPixel,
        )
        # pathml_small_dicom.dcm: 42 frames without a Basic Offset Table, for whole instances.
        if path.name == "pathml_small_dicom.dcm":
            chosen[(*key, "multi-frame")] = path
        else:
            chosen.setdefault(key, path)
    return list(chosen.values())


REPRESENTATIVES = _representatives()


@pytest.fixture(scope="module")
def archive(fresh_server_module):
    server = fresh_server_module()
    server.store([path.read_bytes() for path in REPRESENTATIVES])
    return server


def _url(server, dataset: pydicom.Dataset) -> str:
    return (
        f"{server.url}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )


def _options(dataset: pydicom.Dataset, photometric: str | None = None) -> dict:
    return {
        "rows": dataset.Rows,
        "columns": dataset.Columns,
        "samples_per_pixel": dataset.SamplesPerPixel,
        "bits_allocated": dataset.BitsAllocated,
        "bits_stored": dataset.BitsStored,
        "pixel_representation": dataset.PixelRepresentation,
        "photometric_interpretation": photometric or dataset.PhotometricInterpretation,
        "number_of_frames": 1,
        "planar_configuration": 0,
    }


def _independent_decode(data: bytes, transfer_syntax: str, dataset: pydicom.Dataset) -> np.ndarray:
    """A frame the server sent, decoded without the server's code."""
    shape = (dataset.Rows, dataset.Columns) + (
        (dataset.SamplesPerPixel,) if dataset.SamplesPerPixel > 1 else ()
    )
    if transfer_syntax == "1.2.840.10008.1.2.1":
        dtype = np.uint8 if dataset.BitsAllocated == 8 else np.uint16
        return np.frombuffer(data, dtype).reshape(shape)
    if transfer_syntax == "1.2.840.10008.1.2.4.110":
        return imagecodecs.jpegxl_decode(data).reshape(shape)
    photometric = dataset.PhotometricInterpretation
    stored = str(dataset.file_meta.TransferSyntaxUID)
    if photometric.startswith("YBR") and stored not in ("1.2.840.10008.1.2.5", *NATIVE):
        photometric = "RGB"  # the server decoded the stored colour transform away
    array, _ = get_decoder(transfer_syntax).as_array(
        encapsulate([data]), index=0, **_options(dataset, photometric)
    )
    return array.reshape(shape)


def _original_pixels(path: Path, dataset: pydicom.Dataset) -> np.ndarray:
    """Frame 1 of the stored file as pixels: pydicom's decoding for lossless forms; for
    lossy ones libjpeg-turbo's/OpenJPEG's (decoders of lossy forms may differ by a little,
    and a lossless target must reproduce exactly what was decoded)."""
    transfer_syntax = str(dataset.file_meta.TransferSyntaxUID)
    first = frames(path)[0]
    if transfer_syntax in LOSSY_STORED:
        if transfer_syntax == "1.2.840.10008.1.2.4.91":
            return imagecodecs.jpeg2k_decode(first)
        return imagecodecs.jpeg8_decode(first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array = pixel_array(dataset)
    return array[0] if int(dataset.get("NumberOfFrames", 1) or 1) > 1 else array


CASES = [
    pytest.param(path, ts, id=f"{path.name}-{ts}")
    for path in REPRESENTATIVES
    for ts in LOSSLESS_TARGETS
    if ts != str(read(path).file_meta.TransferSyntaxUID)
    and not (ts == "1.2.840.10008.1.2.4.110" and read(path).BitsAllocated > 8)
]


@pytest.mark.parametrize(("path", "transfer_syntax"), CASES)
def test_frames_transcoded_to_lossless_targets_keep_the_pixels(
    archive, path: Path, transfer_syntax: str
) -> None:
    dataset = read(path)
    media_type = LOSSLESS_TARGETS[transfer_syntax]
    accept = f'multipart/related; type="{media_type}"; transfer-syntax={transfer_syntax}'
    response = requests.get(f"{_url(archive, dataset)}/frames/1", headers={"Accept": accept})
    assert response.status_code == 200, response.text
    (headers, body), *rest = parse_multipart(response.headers["Content-Type"], response.content)
    assert not rest
    assert headers["content-type"].startswith(media_type)
    if transfer_syntax != "1.2.840.10008.1.2.1":
        assert f"transfer-syntax={transfer_syntax}" in headers["content-type"]
    decoded = _independent_decode(body, transfer_syntax, dataset)
    expected = _original_pixels(path, dataset)
    assert decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)
    if str(dataset.file_meta.TransferSyntaxUID) in LOSSY_STORED:
        # and pydicom's own decoding of the stored frame is within a decoder's rounding.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = pixel_array(dataset)
        reference = reference[0] if reference.ndim == decoded.ndim + 1 else reference
        assert np.abs(reference.astype(int) - decoded.astype(int)).max() <= 8


def test_uncompressed_octet_stream_is_the_default_for_compressed_frames(archive) -> None:
    # Table 8.7.3-5: application/octet-stream without transfer-syntax is Explicit VR LE.
    path = next(p for p in REPRESENTATIVES if p.name == "pathml_small_dicom.dcm")
    dataset = read(path)
    response = requests.get(
        f"{_url(archive, dataset)}/frames/2",
        headers={"Accept": "application/octet-stream"},
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    expected = imagecodecs.jpeg8_decode(frames(path)[1])
    assert response.content == expected.tobytes()


def test_image_jpeg_without_transfer_syntax_is_lossless_for_lossless_data(archive) -> None:
    # Table 8.7.3-5: image/jpeg defaults to JPEG Lossless SV1 (.70); a lossless stored frame
    # is transcoded to it rather than served lossy.
    path = next(p for p in REPRESENTATIVES if p.name == "wsi2dcm_jpeg2000.dcm")
    dataset = read(path)
    response = requests.get(f"{_url(archive, dataset)}/frames/1", headers={"Accept": "image/jpeg"})
    assert response.status_code == 200
    assert "transfer-syntax=1.2.840.10008.1.2.4.70" in response.headers["Content-Type"]
    decoded = _independent_decode(response.content, "1.2.840.10008.1.2.4.70", dataset)
    np.testing.assert_array_equal(decoded, _original_pixels(path, dataset))


def test_weights_choose_between_stored_and_transcoded(archive) -> None:
    path = next(p for p in REPRESENTATIVES if p.name == "pathml_small_dicom.dcm")
    url = f"{_url(archive, read(path))}/frames/1"
    stored = 'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50'
    j2k = 'multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.90'
    for accept, expected in [
        (f"{stored}; q=0.5, {j2k}", "image/jp2"),
        (f"{stored}, {j2k}; q=0.5", "image/jpeg"),
    ]:
        response = requests.get(url, headers={"Accept": accept})
        assert response.status_code == 200
        part_type = parse_multipart(response.headers["Content-Type"], response.content)[0][0]
        assert part_type["content-type"].startswith(expected), accept


def test_transcoded_frames_are_cached_and_validated(archive) -> None:
    path = next(p for p in REPRESENTATIVES if p.name == "wsi2dcm_raw.dcm")
    url = f"{_url(archive, read(path))}/frames/1"
    accept = 'multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.90'
    first = requests.get(url, headers={"Accept": accept})
    second = requests.get(url, headers={"Accept": accept})
    assert first.content == second.content  # same boundary, same bytes
    assert first.headers["ETag"] == second.headers["ETag"]
    native = requests.get(
        url, headers={"Accept": "multipart/related; type=application/octet-stream"}
    )
    assert native.headers["ETag"] != first.headers["ETag"]
    again = requests.get(url, headers={"Accept": accept, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def _instance(archive, dataset: pydicom.Dataset, transfer_syntax: str) -> pydicom.Dataset:
    response = requests.get(
        _url(archive, dataset),
        headers={"Accept": f"application/dicom; transfer-syntax={transfer_syntax}"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == (
        f"application/dicom; transfer-syntax={transfer_syntax}"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(response.content))


def test_whole_instance_decompressed(archive) -> None:
    path = next(p for p in REPRESENTATIVES if p.name == "pathml_small_dicom.dcm")
    original = read(path)
    received = _instance(archive, original, "1.2.840.10008.1.2.1")
    assert received.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert received.SOPInstanceUID == original.SOPInstanceUID
    assert received.NumberOfFrames == original.NumberOfFrames
    assert received.PhotometricInterpretation == "RGB"
    assert received.LossyImageCompression == "01"  # it was lossy before; it stays so
    expected = np.stack([imagecodecs.jpeg8_decode(frame) for frame in frames(path)])
    np.testing.assert_array_equal(pixel_array(received), expected)
    assert "ExtendedOffsetTable" not in received


def test_whole_instance_to_lossless_jpeg2000_and_rle(archive) -> None:
    path = next(p for p in REPRESENTATIVES if p.name == "wsi2dcm_raw.dcm")
    original = read(path)
    for transfer_syntax in ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5"):
        received = _instance(archive, original, transfer_syntax)
        assert received.file_meta.TransferSyntaxUID == transfer_syntax
        np.testing.assert_array_equal(pixel_array(received), pixel_array(original))
        assert received.get("LossyImageCompression", "00") == original.get(
            "LossyImageCompression", "00"
        )


def test_whole_instance_lossy_target_records_the_compression(archive) -> None:
    path = next(p for p in REPRESENTATIVES if p.name == "wsi2dcm_raw.dcm")
    original = read(path)
    received = _instance(archive, original, "1.2.840.10008.1.2.4.50")
    assert received.LossyImageCompression == "01"
    methods = received.data_element("LossyImageCompressionMethod").value
    ratios = received.data_element("LossyImageCompressionRatio").value
    assert (methods if isinstance(methods, str) else methods[-1]) == "ISO_10918_1"
    assert float(ratios if isinstance(ratios, float | str) else ratios[-1]) > 1
    assert received.PhotometricInterpretation == "YBR_FULL_422"
    error = np.abs(pixel_array(received).astype(int) - pixel_array(original).astype(int))
    assert error.mean() < 3


def test_equal_weights_prefer_the_stored_form(archive) -> None:
    # Older dicom-microscopy-viewer builds list four types at q=1, JPEG baseline first: a
    # JPEG 2000 frame they also accept goes out as stored, not transcoded.
    path = next(p for p in REPRESENTATIVES if p.name == "wsi2dcm_jpeg2000.dcm")
    dataset = read(path)
    accept = ", ".join(
        f'multipart/related; type="{media}"; transfer-syntax={ts}'
        for media, ts in (
            ("image/jpeg", "1.2.840.10008.1.2.4.50"),
            ("image/jls", "1.2.840.10008.1.2.4.80"),
            ("image/jp2", str(dataset.file_meta.TransferSyntaxUID)),
            ("application/octet-stream", "1.2.840.10008.1.2.1"),
        )
    )
    response = requests.get(f"{_url(archive, dataset)}/frames/1", headers={"Accept": accept})
    (headers, body), *_ = parse_multipart(response.headers["Content-Type"], response.content)
    assert headers["content-type"].startswith("image/jp2")
    assert body == frames(path)[0]
    # With a lower weight on the stored form, the client's preference wins.
    lower = accept.replace('type="image/jp2"', 'type="image/jp2"; q=0.5')
    response = requests.get(f"{_url(archive, dataset)}/frames/1", headers={"Accept": lower})
    (headers, _), *_ = parse_multipart(response.headers["Content-Type"], response.content)
    assert headers["content-type"].startswith("image/jpeg")


def test_big_endian_frames_are_not_taken_for_little_endian_ones(fresh_server) -> None:
    # Explicit VR Big Endian (retired, still met in old archives): a 16-bit frame's bytes
    # differ from the little endian ones, so they go out only as stored and labelled so.
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, generate_uid

    pixels = np.arange(64, dtype=">u2").reshape(8, 8) * 257
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.Modality = "BIG", "OT"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    server = fresh_server()
    server.store([buffer.getvalue()])
    url = f"{_url(server, ds)}/frames/1"
    anything = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    response = requests.get(url, headers={"Accept": anything})
    (headers, body), *_ = parse_multipart(response.headers["Content-Type"], response.content)
    assert f"transfer-syntax={ExplicitVRBigEndian}" in headers["content-type"]
    stored = requests.get(
        url, headers={"Accept": "multipart/related; type=application/octet-stream"}
    )
    assert stored.status_code == 406  # little endian was asked for; no byte swapping here
    assert body == pixels.tobytes()


def test_whole_lossy_instance_to_lossy_jpeg2000_keeps_its_history(fresh_server, testdata) -> None:
    """A JPEG instance (single-valued LossyImageCompressionMethod and Ratio) asked for as
    lossy JPEG 2000. Before: TypeError ('DSfloat' object is not iterable) inside the streamed
    body, and the client got a cut stream."""
    server = fresh_server()
    path = testdata / "dicom" / "3dhistech-wg26-BPAEC" / "10_0"
    original = read(path)
    server.store([path.read_bytes()])
    received = _instance(server, original, "1.2.840.10008.1.2.4.91")
    assert received.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.91"
    assert received.LossyImageCompression == "01"
    # PS3.3 C.7.6.1.1.5: each lossy step in order, with its ratio.
    assert list(received.LossyImageCompressionMethod) == ["ISO_10918_1", "ISO_15444_1"]
    ratios = [float(r) for r in received.LossyImageCompressionRatio]
    assert ratios[0] == float(original.LossyImageCompressionRatio) and ratios[1] > 1
    assert int(received.NumberOfFrames) == int(original.NumberOfFrames)
    expected = np.stack([imagecodecs.jpeg8_decode(frame) for frame in frames(path)])
    error = np.abs(pixel_array(received).astype(int) - expected.astype(int))
    assert error.mean() < 2  # quality 90 on 8-bit RGB: visually lossless
