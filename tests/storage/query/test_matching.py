"""Searching in process, through Archive.search: one test per PS3.4 C.2.2.2 matching type,
and the invalid values each kind of key refuses (InvalidRequest, 400 over HTTP)."""

from __future__ import annotations

import pytest

from storage.dicom.levels import Level
from storage.errors import InvalidRequest
from storage.query.keys import attribute_for, parse_key
from storage.query.search import Search
from tests import corpus
from tests.inprocess import TESTER

LETTER = {spec.uid: letter for letter, spec in corpus.STUDIES.items()}


def find(archive, level: Level = Level.STUDY, fuzzy: bool = False, **keys: str) -> set[str]:  # type: ignore[no-untyped-def]
    """The corpus letters (or 'WSI') of the studies that the matches belong to."""
    search = Search(level, levels={level}, fuzzy=fuzzy)
    for key, value in keys.items():
        path = parse_key(key.replace("__", "."))
        attribute = attribute_for(path) if path else None
        assert attribute is not None, key
        search.where(attribute, value)
    page = archive.search(search, who=TESTER)
    return {LETTER.get(match.uids[0], "WSI") for match in page.results}


@pytest.fixture(scope="module")
def archive(corpus_archive):  # type: ignore[no-untyped-def]
    return corpus_archive[0]


def test_single_value(archive) -> None:
    assert find(archive, PatientID="P1") == {"A"}
    assert find(archive, PatientID="p1") == set()  # C.2.2.2.1: case-sensitive but for PN


def test_person_names(archive) -> None:
    assert find(archive, PatientName="smith^john") == {"D"}
    assert find(archive, PatientName="MÜLLER*") == {"A", "B"}
    assert find(archive, fuzzy=True, PatientName="anna mul") == {"B"}
    assert find(archive, fuzzy=True, PatientName="*ull*") == {"A", "B"}
    # Accents fold in literal matching too (C.2.2.2.1 allows it for PN), wildcards apply.
    assert find(archive, PatientName="muller^jurgen") == {"A"}
    assert find(archive, PatientName="O'BRIEN^SEAN") == {"C"}
    assert find(archive, PatientName="mueller*") == set()  # literal: spelt as stored


def test_fuzzy_person_names_sound_alike(archive) -> None:
    """fuzzymatching=true: a word matches a word that it begins or that has its Soundex
    code; every word of the value must match some word of the name."""
    assert find(archive, fuzzy=True, PatientName="Mueller") == {"A", "B"}  # M460
    assert find(archive, fuzzy=True, PatientName="Smyth") == {"D", "E"}  # S530
    assert find(archive, fuzzy=True, PatientName="Mueller Jurgen") == {"A"}
    assert find(archive, fuzzy=True, PatientName="Mueller Jon") == set()  # J500 is not J625
    assert find(archive, fuzzy=True, PatientName="Obrian") == set()  # 'o' 'brien' are 2 words
    assert find(archive, fuzzy=True, PatientName="Brian Shawn") == {"C"}  # B650, S500
    assert find(archive, fuzzy=True, ReferringPhysicianName="Dow") == {"A"}  # D000, as Doe


def test_uid_lists(archive) -> None:
    a, c = corpus.STUDIES["A"].uid, corpus.STUDIES["C"].uid
    assert find(archive, StudyInstanceUID=f"{a},{c}") == {"A", "C"}
    assert find(archive, StudyInstanceUID=f"{a}\\{c}") == {"A", "C"}  # DIMSE's separator


def test_wildcards(archive) -> None:
    assert find(archive, PatientID="P?") == {"A", "B", "C", "E"}
    assert find(archive, PatientID="P%1_x") == {"D"}
    assert find(archive, PatientID="P_*") == set()


def test_universal(archive) -> None:
    assert (
        find(archive, PatientID="*")
        == find(archive, PatientID="")
        == set(LETTER.values()) | {"WSI"}
    )


def test_ranges(archive) -> None:
    assert find(archive, StudyDate="20201231-20210101") == {"A", "B", "C"}
    assert find(archive, StudyDate="-20201231") == {"A", "E"}
    assert find(archive, StudyTime="2300-0100") == {"A", "B"}  # wraps around midnight
    assert find(archive, StudyDate="20201231-20210101", StudyTime="2300-0100") == {"A", "B"}


def test_sequence_items(archive) -> None:
    assert find(
        archive, Level.SERIES, RequestAttributesSequence__ScheduledProcedureStepID="SPS1"
    ) == {"D"}
    assert find(archive, Level.INSTANCE, SpecimenIdentifier="SPEC-A") == {"A"}


def test_numbers_and_computed(archive) -> None:
    assert find(archive, Level.SERIES, SeriesNumber="3") == {"A"}
    assert find(archive, ModalitiesInStudy="CT") == {"C"}


@pytest.mark.parametrize(
    "key,value,level",
    [
        ("StudyDate", "abc", Level.STUDY),
        ("StudyDate", "20251345", Level.STUDY),
        ("StudyDate", "2025-13-45", Level.STUDY),
        ("StudyTime", "2500", Level.STUDY),
        ("AcquisitionDateTime", "20201301", Level.INSTANCE),
        ("SeriesNumber", "one", Level.SERIES),
        ("StudyInstanceUID", "1.2.x", Level.STUDY),
        ("StudyInstanceUID", "1.2.*", Level.STUDY),
        ("NumberOfStudyRelatedInstances", "3", Level.STUDY),
    ],
)
def test_invalid_values_are_refused(archive, key: str, value: str, level: Level) -> None:
    with pytest.raises(InvalidRequest, match=key):
        find(archive, level, **{key: value})
