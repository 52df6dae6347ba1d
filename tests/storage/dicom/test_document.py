"""The DICOM JSON document, its typed accessor, and typed reads of pydicom data sets."""

from __future__ import annotations

import json

from pydicom.dataset import Dataset
from pydicom.valuerep import DSfloat

from storage.dicom.dataset import integer, items, text, values
from storage.dicom.document import JsonDataset, absolutize, build_document, load, render


def test_the_accessor_reads_first_values_by_kind() -> None:
    document = JsonDataset(
        {
            "00280010": {"vr": "US", "Value": [512]},
            "00281050": {"vr": "DS", "Value": ["40.5"]},
            "00080008": {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY"]},
            "00280004": {"vr": "CS", "Value": ["RGB "]},
            "00480105": {"vr": "SQ", "Value": [{"00480106": {"vr": "SH", "Value": ["1"]}}]},
            "00281051": {"vr": "DS"},
        }
    )
    assert document.integer("00280010", 0) == 512 and document.integer(0x00280011, 7) == 7
    assert document.number("00281050", 0.0) == 40.5
    assert document.optional_number("00281051") is None
    assert document.values("00080008") == ["ORIGINAL", "PRIMARY"]
    assert document.text("00280004") == "RGB"
    assert document.items("00480105")[0].first("00480106") == "1"
    assert document.first("00100010", "none") == "none" and document.items("00100010") == []


def test_values_of_one_and_of_several() -> None:
    """pydicom gives VM 1 as the value itself: list() of a DSfloat fails, values() does not."""
    dataset = Dataset()
    dataset.LossyImageCompressionRatio = DSfloat("12.5")
    dataset.LossyImageCompressionMethod = ["ISO_10918_1", "ISO_15444_1"]
    dataset.InstanceNumber = "7"
    assert values(dataset, "LossyImageCompressionRatio") == [DSfloat("12.5")]
    assert values(dataset, "LossyImageCompressionMethod") == ["ISO_10918_1", "ISO_15444_1"]
    assert values(dataset, "PatientName") == []
    assert text(dataset, "LossyImageCompressionMethod", 64) == "ISO_10918_1\\ISO_15444_1"
    assert integer(dataset, "InstanceNumber") == 7 and integer(dataset, "Rows") is None
    assert items(dataset, "ReferencedSeriesSequence") == []


def test_documents_render_with_absolute_bulk_data_uris() -> None:
    dataset = Dataset()
    dataset.PatientName = 'Doe^"Quote"'
    dataset.ICCProfile = bytes(2000)
    document = build_document(dataset, "1.2", "1.3", "1.4", "OB")
    stored = load(document)
    assert (
        stored["00282000"]["BulkDataURI"]
        == "/studies/1.2/series/1.3/instances/1.4/bulkdata/00282000"
    )
    rendered = json.loads(b"".join(render([document, document], "https://h/dicomweb")))
    assert len(rendered) == 2
    assert rendered[0]["00282000"]["BulkDataURI"].startswith("https://h/dicomweb/studies/1.2/")
    assert rendered[0]["7FE00010"]["BulkDataURI"].endswith("/bulkdata/7FE00010")
    assert rendered[0]["00100010"]["Value"] == [{"Alphabetic": 'Doe^"Quote"'}]
    assert absolutize(stored, "http://x")["00282000"]["BulkDataURI"].startswith("http://x/")
