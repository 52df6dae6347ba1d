"""The one door: every operation the front doors use, on a temporary archive."""

from __future__ import annotations

import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, generate_uid

from storage.dicom.levels import Level
from storage.errors import BlobMissing, CodecError, NotFound
from storage.query.keys import by_keyword
from storage.query.search import Search
from tests.dicomfiles import read
from tests.inprocess import TESTER, multiframe, open_at, store


def test_lookups_for_the_front_doors(empty_archive, testdata) -> None:
    archive = empty_archive
    dataset = read(testdata / "dicom" / "ezwsi_label_test.dcm")
    stored = store(archive, (testdata / "dicom" / "ezwsi_label_test.dcm").read_bytes())
    # Storage commitment: only stored instances with their classes.
    found = archive.stored_classes([stored.instance, "1.2.3.4"], who=TESTER)
    assert found == {stored.instance: str(dataset.SOPClassUID)}
    # The importer's accession lookup (with and without the patient).
    if dataset.get("AccessionNumber"):
        assert (
            archive.study_for_accession(dataset.AccessionNumber, None, who=TESTER) == stored.study
        )
        assert archive.study_for_accession(dataset.AccessionNumber, "nobody", who=TESTER) is None
    assert archive.study_for_accession("NO-SUCH-ACCESSION", None, who=TESTER) is None
    # C-MOVE / C-GET: named records of the matched files, each readable as a local file.
    search = Search(Level.STUDY).where(by_keyword("StudyInstanceUID"), stored.study)
    (item,) = archive.matching_files(search, who=TESTER)
    assert (item.study, item.series, item.instance) == (
        stored.study,
        stored.series,
        stored.instance,
    )
    assert item.transfer_syntax == str(dataset.file_meta.TransferSyntaxUID)
    with archive.local_file(item) as path:
        assert path.read_bytes() == (testdata / "dicom" / "ezwsi_label_test.dcm").read_bytes()


def test_cached_records_and_fresh_ones(tmp_path) -> None:
    archive, _ = open_at(tmp_path, duplicate_policy="overwrite")
    dataset = multiframe(3)
    first = store(archive, dataset)
    record = archive.instance(first.study, first.series, first.instance, who=TESTER)
    assert (
        archive.instance(first.study, first.series, first.instance, who=TESTER) is record
    )  # cached
    store(archive, dataset)  # stored again: a new blob, the old one deleted
    with pytest.raises(BlobMissing):
        archive.frames(record).read(1)
    fresh = archive.instance(first.study, first.series, first.instance, fresh=True, who=TESTER)
    assert fresh.blob_key != record.blob_key
    assert archive.frames(fresh).read(2) == dataset.PixelData[256:512]
    assert archive.delete(first.study, first.series, first.instance, who=TESTER) == 1
    with pytest.raises(NotFound):
        archive.records(first.study, who=TESTER)


def test_frames_streams_and_transcoded_files(empty_archive) -> None:
    archive = empty_archive
    dataset = multiframe(4, rows=8, columns=8)
    stored = store(archive, dataset)
    record = archive.records(stored.study, who=TESTER)[0]
    targets = archive.transcode_targets(record)
    assert JPEGLSLossless in targets and record.transfer_syntax not in targets
    read_frame = archive.frame_source(record, ExplicitVRLittleEndian)
    assert read_frame(4) == dataset.PixelData[3 * 64 :]
    whole = archive.instance_stream(record, record.transfer_syntax)
    assert whole.length == record.size == len(b"".join(whole.chunks))
    path = archive.transcoded_file(item_of(archive, stored), JPEGLSLossless)
    try:
        assert read(path).pixel_array.tobytes() == dataset.PixelData
        assert path.parent == archive.staging_area()
    finally:
        path.unlink()
    with pytest.raises(CodecError):
        archive.transcoded_file(item_of(archive, stored), "1.2.840.10008.1.2.4.100")
    assert list(archive.staging_area().iterdir()) == []


def item_of(archive, stored):  # type: ignore[no-untyped-def]
    search = Search(Level.INSTANCE).where(by_keyword("SOPInstanceUID"), stored.instance)
    return archive.matching_files(search, who=TESTER)[0]


def test_documents_and_descriptions(empty_archive) -> None:
    archive = empty_archive
    dataset = multiframe(2, rows=4, columns=6)
    dataset.SeriesDescription = "described"
    stored = store(archive, dataset)
    record = archive.records(stored.study, who=TESTER)[0]
    assert archive.document(record).text("0008103E") == "described"
    info = archive.image_info(record)
    assert info is not None and (info.rows, info.columns, info.samples) == (4, 6, 1)
    assert [image.key for image in archive.images([record])] == [record.blob_key]
    other = Search(Level.STUDY).where(by_keyword("StudyInstanceUID"), generate_uid())
    assert archive.search(other, who=TESTER).results == []
