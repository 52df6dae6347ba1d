"""C-FIND identifiers to searches, and matches back to identifiers (PS3.4 C.4, C.6)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dimse.identifiers import IdentifierError, dataset_from, search_for
from storage.dicom.levels import Level


def identifier(level: str, **keys: object) -> Dataset:
    dataset = Dataset()
    dataset.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(dataset, keyword, value)
    return dataset


def test_keys_with_values_match_and_empty_ones_are_returned() -> None:
    search, requested = search_for(identifier("SERIES", Modality="SM", SeriesNumber=""))
    assert search.level == Level.SERIES
    assert search.levels == {Level.PATIENT, Level.STUDY, Level.SERIES}
    assert [(f.attribute.keyword, f.value) for f in search.filters] == [("Modality", "SM")]
    assert [a.keyword for a in search.include] == ["SeriesNumber"]
    assert requested == [0x00080060, 0x00200011]


def test_multiple_values_and_sequences() -> None:
    item = Dataset()
    item.ScheduledProcedureStepID = "SPS1"
    search, _ = search_for(
        identifier(
            "IMAGE", SOPClassUID=["1.2.3", "1.2.4"], RequestAttributesSequence=Sequence([item])
        )
    )
    matched = {f.attribute.keyword: f.value for f in search.filters}
    assert matched == {
        "SOPClassUID": "1.2.3\\1.2.4",
        "RequestAttributesSequence.ScheduledProcedureStepID": "SPS1",
    }


def test_an_unknown_level_cannot_be_understood() -> None:
    with pytest.raises(IdentifierError) as raised:
        search_for(identifier("FRAME"))
    assert raised.value.status == 0xC000


def test_responses_carry_what_was_asked_and_who_has_it() -> None:
    match = {"00100020": {"vr": "LO", "Value": ["P1"]}}
    response = dataset_from(match, [0x00100020, 0x00101010], "PATIENT", "WSIARCHIVE")
    assert response.PatientID == "P1" and response.PatientAge in (None, "")
    assert response.RetrieveAETitle == "WSIARCHIVE" and response.InstanceAvailability == "ONLINE"
    assert response.QueryRetrieveLevel == "PATIENT"
