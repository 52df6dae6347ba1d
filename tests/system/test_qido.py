"""QIDO-RS over real HTTP with dicomweb-client: one test per matching rule, on a corpus the
tests build (tests/corpus.py) plus a real WSI instance."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import requests
from dicomweb_client import DICOMwebClient

from tests import corpus
from tests.dicomfiles import parse_multipart, read

LETTER = {spec.uid: letter for letter, spec in corpus.STUDIES.items()}
WSI = "dicom/wsi2dcm_jpeg.dcm"
NS = {"d": "http://dicom.nema.org/PS3.19/models/NativeDICOM"}


@pytest.fixture(scope="module")
def server(fresh_server_module, testdata):
    server = fresh_server_module()
    client = DICOMwebClient(server.url)
    datasets = corpus.instances()
    for start in range(0, len(datasets), 6):
        client.store_instances(datasets[start : start + 6])
    server.store([(testdata / WSI).read_bytes()])
    return server


@pytest.fixture(scope="module")
def client(server) -> DICOMwebClient:
    return DICOMwebClient(server.url)


def value(result: dict, keyword_tag: str):  # type: ignore[no-untyped-def]
    element = result.get(keyword_tag, {})
    values = element.get("Value")
    return values[0] if values else None


def studies(client: DICOMwebClient, **filters) -> set[str]:  # type: ignore[no-untyped-def]
    fuzzy = filters.pop("fuzzymatching", None)
    results = client.search_for_studies(search_filters=filters, fuzzymatching=fuzzy)
    return {LETTER.get(value(r, "0020000D"), "WSI") for r in results}


def get(server, path: str, **params):  # type: ignore[no-untyped-def]
    return requests.get(
        server.url + path, params=params, headers={"Accept": "application/dicom+json"}
    )


# -- single value, case rules ------------------------------------------------------------------
def test_single_value_is_exact_and_case_sensitive(client) -> None:
    assert studies(client, PatientID="P1") == {"A"}
    assert studies(client, PatientID="p1") == set()
    assert studies(client, AccessionNumber="ACC2") == {"B"}
    assert studies(client, StudyID="S-C") == {"C"}


def test_person_names_match_regardless_of_case(client) -> None:
    assert studies(client, PatientName="smith^john") == {"D"}
    assert studies(client, PatientName="SMITH*") == {"D", "E"}
    assert studies(client, ReferringPhysicianName="doe^john") == {"A"}


# -- UID lists -----------------------------------------------------------------------------------
def test_uid_list(client) -> None:
    a, c = corpus.STUDIES["A"].uid, corpus.STUDIES["C"].uid
    assert studies(client, StudyInstanceUID=f"{a},{c}") == {"A", "C"}
    assert studies(client, StudyInstanceUID=a) == {"A"}


# -- wildcards -------------------------------------------------------------------------------------
def test_wildcards_and_literal_percent_underscore(client) -> None:
    assert studies(client, PatientID="P*") == {"A", "B", "C", "D", "E"}
    assert studies(client, PatientID="P?") == {"A", "B", "C", "E"}
    assert studies(client, PatientID="P%1_x") == {"D"}
    assert studies(client, PatientID="P%*") == {"D"}
    # '%' and '_' are literal: 'P_' is not "P and any character".
    assert studies(client, PatientID="P_*") == set()
    assert studies(client, StudyDescription="*biopsy") == {"A"}
    assert studies(client, StudyDescription="*BIOPSY") == set()


# -- character sets --------------------------------------------------------------------------------
def test_names_stored_in_latin1_and_utf8_match_the_same_query(client) -> None:
    assert studies(client, PatientName="Müller*") == {"A", "B"}
    assert studies(client, PatientName="O'Brien^Seán") == {"C"}
    results = client.search_for_studies(search_filters={"PatientID": "P1"})
    assert value(results[0], "00100010") == {"Alphabetic": "Müller^Jürgen"}


# -- fuzzy matching --------------------------------------------------------------------------------
def test_fuzzy_matching_ignores_case_and_accents_and_matches_word_starts(client) -> None:
    assert studies(client, PatientName="muller", fuzzymatching=True) == {"A", "B"}
    assert studies(client, PatientName="jur", fuzzymatching=True) == {"A"}
    assert studies(client, PatientName="anna mul", fuzzymatching=True) == {"B"}
    assert studies(client, PatientName="SEAN", fuzzymatching=True) == {"C"}
    # Slim's pattern: a wildcard search with fuzzy matching on.
    assert studies(client, PatientName="*ull*", fuzzymatching=True) == {"A", "B"}
    # Sounding alike (Soundex): a misspelt name is found.
    assert studies(client, PatientName="Mueler", fuzzymatching=True) == {"A", "B"}
    # Literal matching folds case and accents too (C.2.2.2.1), but needs the whole name.
    assert studies(client, PatientName="muller*") == {"A", "B"}
    assert studies(client, PatientName="Mueler*") == set()


# -- dates and times -------------------------------------------------------------------------------
def test_date_ranges(client) -> None:
    assert studies(client, StudyDate="20201231-20210101") == {"A", "B", "C"}
    assert studies(client, StudyDate="20210101-") == {"B", "C", "D"}
    assert studies(client, StudyDate="-20201231") == {"A", "E"}
    assert studies(client, StudyDate="20210101") == {"B", "C"}
    assert studies(client, PatientBirthDate="19700101-19850101") == {"A", "B"}


def test_combined_date_time_across_midnight(client) -> None:
    # One night: 31 Dec 23:00 to 1 Jan 01:00 (PS3.4 C.2.2.2.5.4 combined matching).
    assert studies(client, StudyDate="20201231-20210101", StudyTime="2300-0100") == {"A", "B"}
    assert studies(client, StudyDate="20210101", StudyTime="0000-1000") == {"B"}


def test_time_ranges(client) -> None:
    assert studies(client, StudyTime="0900-1300") == {"C", "D", "E"}
    assert studies(client, StudyTime="10-10") == {"E"}  # 10 means 10:00:00 to 10:59:59
    assert studies(client, StudyTime="2300-0100") == {"A", "B"}  # wraps around midnight


def test_datetime_ranges_at_instance_level(client) -> None:
    results = client.search_for_instances(
        search_filters={"AcquisitionDateTime": "20201231230000-20210101010000"}
    )
    assert {LETTER[value(r, "0020000D")] for r in results} == {"A", "B"}
    results = client.search_for_instances(search_filters={"AcquisitionDateTime": "2019"})
    assert {LETTER[value(r, "0020000D")] for r in results} == {"E"}


# -- universal, modalities, sequences ------------------------------------------------------
def test_universal_matching_returns_everything(client) -> None:
    results = client.search_for_studies(search_filters={"PatientName": ""})
    assert len(results) == 6
    assert all("00100010" in r for r in results)


def test_modalities_in_study(client) -> None:
    assert studies(client, ModalitiesInStudy="SM") == {"A", "B", "E", "WSI"}
    assert studies(client, ModalitiesInStudy="CT,SEG") == {"C"}
    results = client.search_for_studies(
        search_filters={"StudyInstanceUID": corpus.STUDIES["A"].uid}
    )
    assert results[0]["00080061"]["Value"] == ["ANN", "SM"]


def test_sequence_matching(client, server) -> None:
    for key in ("RequestAttributesSequence.ScheduledProcedureStepID", "00400275.00400009"):
        results = get(server, "/series", **{key: "SPS1"}).json()
        assert {LETTER[value(r, "0020000D")] for r in results} == {"D"}
        assert len(results) == 2
        item = results[0]["00400275"]["Value"][0]
        assert item["00400009"]["Value"] == ["SPS1"]
    assert (
        get(server, "/series", **{"RequestAttributesSequence.RequestedProcedureID": "RP2"}).json()
        == []
    )


def test_pathology_keys(client) -> None:
    results = client.search_for_instances(search_filters={"ContainerIdentifier": "SLIDE-A1"})
    assert len(results) == 3
    results = client.search_for_instances(search_filters={"SpecimenIdentifier": "SPEC-B"})
    assert len(results) == 2
    assert results[0]["00400560"]["Value"][0]["00400551"]["Value"] == ["SPEC-B"]
    results = client.search_for_series(
        search_filters={"Modality": "SM", "SeriesDescription": "SM series 2*"}
    )
    assert {LETTER[value(r, "0020000D")] for r in results} == {"A"}


# -- returned attributes ---------------------------------------------------------------------------
def test_study_results_carry_computed_attributes(client, server) -> None:
    result = client.search_for_studies(search_filters={"PatientID": "P1"})[0]
    assert value(result, "00201206") == 3  # NumberOfStudyRelatedSeries
    assert value(result, "00201208") == 5  # NumberOfStudyRelatedInstances
    assert value(result, "00080056") == "ONLINE"
    assert value(result, "00081190") == f"{server.url}/studies/{corpus.STUDIES['A'].uid}"
    series = client.search_for_series(corpus.STUDIES["A"].uid)
    assert sorted(value(s, "00201209") for s in series) == [1, 1, 3]


def test_instance_results_for_a_real_wsi(client, testdata) -> None:
    original = read(testdata / WSI)
    results = client.search_for_instances(
        original.StudyInstanceUID,
        original.SeriesInstanceUID,
        fields=["AvailableTransferSyntaxUID"],
    )
    assert len(results) == 1
    result = results[0]
    assert value(result, "00280010") == original.Rows
    assert value(result, "00280011") == original.Columns
    assert value(result, "00280008") == int(original.NumberOfFrames)
    assert value(result, "00280100") == original.BitsAllocated
    assert value(result, "00083002") == original.file_meta.TransferSyntaxUID
    assert value(result, "00080016") == original.SOPClassUID


def test_relational_levels(client, server) -> None:
    a = corpus.STUDIES["A"].uid
    all_series = get(server, "/series", Modality="ANN").json()
    assert value(all_series[0], "00100020") == "P1"  # /series carries study attributes
    scoped = get(server, f"/studies/{a}/series").json()
    assert "00100020" not in scoped[0] and value(scoped[0], "0020000D") == a
    study_instances = get(server, f"/studies/{a}/instances").json()
    assert len(study_instances) == 5
    assert "00080060" in study_instances[0] and "00100020" not in study_instances[0]
    instances = get(server, "/instances", PatientID="P1").json()
    assert len(instances) == 5 and value(instances[0], "00100020") == "P1"


def test_includefield_forms(client, server) -> None:
    a = corpus.STUDIES["A"].uid
    by_keyword = get(server, "/studies", StudyInstanceUID=a, includefield="StudyDescription")
    assert value(by_keyword.json()[0], "00081030") == "Skin biopsy"
    by_tag = requests.get(
        server.url + "/studies",
        params=[
            ("StudyInstanceUID", a),
            ("includefield", "00081030,00100030"),
            ("includefield", "00100040"),
        ],
    )
    result = by_tag.json()[0]
    assert (value(result, "00081030"), value(result, "00100030"), value(result, "00100040")) == (
        "Skin biopsy",
        "19700101",
        "M",
    )
    # Attributes the index does not keep come from the stored instance.
    instances = get(
        server, "/instances", ContainerIdentifier="SLIDE-A1", includefield="ImageType,00280004"
    ).json()
    assert sorted(tuple(r["00080008"]["Value"]) for r in instances)[0][2] == "LABEL"
    assert value(instances[0], "00280004") == "MONOCHROME2"
    everything = get(server, "/instances", ContainerIdentifier="SLIDE-E1", includefield="all")
    result = everything.json()[0]
    assert value(result, "00080008") == "ORIGINAL" and "00400560" in result
    assert "7FE00010" not in result


def test_limit_offset_and_the_remaining_warning(client, server) -> None:
    response = get(server, "/studies", limit="2")
    assert len(response.json()) == 2
    assert "There are 4 additional results that can be requested" in response.headers["Warning"]
    last = get(server, "/studies", limit="2", offset="4")
    assert len(last.json()) == 2 and "Warning" not in last.headers
    pages = [get(server, "/studies", limit="2", offset=str(o)).json() for o in (0, 2, 4)]
    uids = [value(r, "0020000D") for page in pages for r in page]
    assert len(set(uids)) == 6  # stable order, no overlap
    assert get(server, "/studies", limit="0").json() == []


def test_empty_results_are_200_with_an_empty_array(server) -> None:
    response = get(server, "/studies", PatientID="nobody")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/dicom+json"
    assert response.json() == []
    assert get(server, "/studies/1.2.3.4/series").json() == []


def test_unsupported_keys_are_ignored_with_a_warning(server) -> None:
    response = get(server, "/studies", Colour="blue", PatientID="P1")
    assert response.status_code == 200 and len(response.json()) == 1
    assert "Colour" in response.headers["Warning"]
    response = get(server, "/instances", PatientID="P1", ImageType="LABEL")
    assert len(response.json()) == 5
    assert "ImageType" in response.headers["Warning"]
    assert "00080008" in response.json()[0]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "ten"},
        {"offset": "-1"},
        {"fuzzymatching": "maybe"},
        {"StudyDate": "2020*"},
        {"StudyDate": "abc"},
        {"StudyDate": "20251345"},
        {"StudyDate": "2025-13-45"},
        {"StudyTime": "2400"},
        {"StudyInstanceUID": "1.2.abc"},
        {"SeriesNumber": "one"},
        {"charset": "ISO-8859-1"},
        [("PatientID", "P1"), ("PatientID", "P2")],
    ],
)
def test_invalid_values_are_400(server, params) -> None:
    response = requests.get(server.url + "/studies", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]


def test_accept_negotiation(server) -> None:
    assert (
        requests.get(server.url + "/studies", headers={"Accept-Charset": "iso-8859-1"}).status_code
        == 406
    )
    assert requests.get(server.url + "/studies", headers={"Accept": "image/png"}).status_code == 406
    response = requests.get(
        server.url + "/studies",
        params={"PatientID": "P2"},
        headers={"Accept": 'multipart/related; type="application/dicom+xml"'},
    )
    assert response.status_code == 200
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    assert len(parts) == 1
    root = ET.fromstring(parts[0][1])
    name = root.find("d:DicomAttribute[@keyword='PatientName']/d:PersonName/d:Alphabetic", NS)
    assert name is not None
    assert name.find("d:FamilyName", NS).text == "Müller"  # type: ignore[union-attr]


def test_empty_and_multiple_value_matching(server) -> None:
    response = get(server, "/studies", PatientSex='""', emptyvaluematching="true")
    assert {LETTER.get(value(r, "0020000D"), "WSI") for r in response.json()} >= {"C", "E"}
    assert "P1" not in {value(r, "00100020") for r in response.json()}
    both = get(server, "/studies", ModalitiesInStudy="SM,SR", multiplevaluematching="true")
    assert {LETTER[value(r, "0020000D")] for r in both.json()} == {"B"}
    either = get(server, "/studies", ModalitiesInStudy="SM,SR")
    assert {LETTER.get(value(r, "0020000D"), "WSI") for r in either.json()} == {
        "A",
        "B",
        "E",
        "WSI",
    }


def test_viewer_search_patterns(client, server) -> None:
    """The searches Slim, wsidicom and OHIF issue, exactly."""
    a, b = corpus.STUDIES["A"].uid, corpus.STUDIES["B"].uid
    assert len(get(server, "/studies", ModalitiesInStudy="SM").json()) == 4
    assert len(get(server, f"/studies/{a}/series").json()) == 3
    assert len(get(server, "/series", Modality="SM", StudyInstanceUID=a).json()) == 2
    assert len(get(server, f"/studies/{b}/instances", Modality="SR").json()) == 1
    for modality, count in (("ANN", 1), ("SEG", 1), ("OT", 1)):
        assert len(get(server, "/series", Modality=modality).json()) == count
    assert len(get(server, "/instances", Modality="PR").json()) == 1
    ohif = requests.get(
        server.url + "/studies",
        params={
            "limit": "101",
            "offset": "0",
            "fuzzymatching": "true",
            "PatientName": "*mul*",
            "includefield": "00081030,00080060",
        },
    )
    assert {value(r, "00100020") for r in ohif.json()} == {"P1", "P2"}


@pytest.mark.parametrize(
    "path,includefield",
    [
        ("/studies", "00101010,00081030"),  # PatientAge: only in documents
        ("/studies/{a}/series", "00080021,00080031,0008103E,00200011"),  # what OHIF sends
        ("/series", "00080021,00080060"),
        ("/studies/{a}/instances", "00080008,00200013"),
        ("/instances", "00080008,00200013"),
    ],
)
def test_includefield_of_attributes_kept_and_not_at_every_level(server, path, includefield) -> None:
    """Before: 500 at the study and series levels for attributes the index does not keep
    (TypeError: 'CursorResult' object is not subscriptable)."""
    a = corpus.STUDIES["A"].uid
    response = get(server, path.format(a=a), includefield=includefield)
    assert response.status_code == 200, response.text
    results = response.json()
    assert results
    for result in results:
        for tag in includefield.split(","):
            assert tag in result, (path, tag)
    if "{a}/series" in path:
        # corpus series: SeriesDescription "SM series 1 of A"; no Series Date in the data.
        assert {value(r, "0008103E") for r in results} >= {"SM series 1 of A"}
        assert all(r["00080021"] == {"vr": "DA"} for r in results)


def test_capabilities(server) -> None:
    response = requests.options(server.url)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/vnd.sun.wadl+xml")
    ns = {"w": "http://wadl.dev.java.net/2009/02"}
    root = ET.fromstring(response.content)
    resources = root.find("w:resources", ns)
    assert resources is not None and resources.get("base") == server.url
    ids = {m.get("id") for m in root.iter("{http://wadl.dev.java.net/2009/02}method")}
    assert {
        "SearchForStudies",
        "StoreInstances",
        "RetrieveFrames",
        "SearchForInstances",
        "RetrieveSeriesMetadata",
    } <= ids
    studies_ = requests.options(server.url + "/studies", headers={"Accept": "application/json"})
    tree = studies_.json()["application"]["resources"]["resources"][0]
    assert tree["path"] == "studies"
    params = {
        p["name"]
        for m in tree["methods"]
        if m["id"] == "SearchForStudies"
        for p in m["request"]["params"]
    }
    assert {"PatientName", "00100010", "fuzzymatching", "includefield", "limit"} <= params
    assert "GET" in studies_.headers["Allow"] and "POST" in studies_.headers["Allow"]
    assert requests.options(server.url, headers={"Accept": "image/png"}).status_code == 406
