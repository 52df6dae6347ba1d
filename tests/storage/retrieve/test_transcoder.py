"""The transcoder and its frame cache."""

from __future__ import annotations

from tests.inprocess import TESTER


def test_transcoded_frame_cache_is_bounded_in_bytes() -> None:
    from storage.imaging.codecs import Encoded
    from storage.retrieve.transcoder import Transcoder

    cache = Transcoder(cache_bytes=1000).cache
    for number in range(1, 6):
        cache.put(("blob", number, "ts"), Encoded(bytes(300), "RGB"))
    assert cache.bytes <= 1000
    assert cache.get(("blob", 1, "ts")) is None  # the least recently used went first
    assert cache.get(("blob", 5, "ts")) is not None
    cache.put(("blob", 9, "ts"), Encoded(bytes(5000), "RGB"))  # larger than the whole cache
    assert cache.get(("blob", 9, "ts")) is None and cache.bytes <= 1000


def test_lossy_history_of_a_single_valued_instance(empty_archive, testdata) -> None:
    """The header a lossy target gets: the stored step and the new one, in order (PS3.3
    C.7.6.1.1.5), where the stored instance had one value of each (a DSfloat, a str)."""
    import io

    import pydicom
    from pydicom.uid import JPEG2000

    from tests.dicomfiles import read
    from tests.inprocess import store

    path = testdata / "dicom" / "3dhistech-wg26-BPAEC" / "10_0"
    stored = store(empty_archive, path.read_bytes())
    record = empty_archive.records(stored.study, stored.series, stored.instance, who=TESTER)[0]
    stream = empty_archive.instance_stream(record, JPEG2000)
    assert stream.length is None  # encapsulated: not known before every frame is encoded
    received = pydicom.dcmread(io.BytesIO(b"".join(stream.chunks)))
    original = read(path)
    assert list(received.LossyImageCompressionMethod) == ["ISO_10918_1", "ISO_15444_1"]
    assert received.LossyImageCompressionRatio[0] == original.LossyImageCompressionRatio
    assert len(received.pixel_array) == int(original.NumberOfFrames)
