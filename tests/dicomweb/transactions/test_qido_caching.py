"""Validators on QIDO-RS JSON results (RFC 9110 §8.8, §13.1.2): a viewer polling a study's
series for new annotations revalidates and gets 304 without a body while nothing changed;
a new series, another query or another user's view of the archive answers 200."""

from __future__ import annotations

from tests.inprocess import multiframe, store

JSON = {"Accept": "application/dicom+json"}


def test_search_results_revalidate_until_the_study_changes(empty_web) -> None:
    archive, client = empty_web
    first = multiframe(2)
    stored = store(archive, first)
    url = f"/dicomweb/studies/{stored.study}/series"
    answer = client.get(url, headers=JSON)
    assert answer.status_code == 200 and len(answer.json) == 1
    etag = answer.headers["ETag"]
    assert etag.startswith('W/"')
    assert answer.headers["Cache-Control"] == "no-store"  # the client keeps it, no disk cache
    again = client.get(url, headers={**JSON, "If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b"" and again.headers["ETag"] == etag
    # Another query of the same study is another representation.
    other = client.get(url + "?Modality=SM", headers={**JSON, "If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag
    # An annotation series arrives: the poll gets it.
    second = multiframe(1, seed=2)
    second.StudyInstanceUID = first.StudyInstanceUID
    store(archive, second)
    changed = client.get(url, headers={**JSON, "If-None-Match": etag})
    assert changed.status_code == 200 and len(changed.json) == 2
    assert changed.headers["ETag"] != etag
    assert client.get(url, headers={**JSON, "If-None-Match": "*"}).status_code == 304


def test_an_empty_result_has_a_validator_too(empty_web) -> None:
    _, client = empty_web
    answer = client.get("/dicomweb/studies?PatientID=nobody", headers=JSON)
    assert answer.status_code == 200 and answer.json == []
    revalidated = client.get(
        "/dicomweb/studies?PatientID=nobody",
        headers={**JSON, "If-None-Match": answer.headers["ETag"]},
    )
    assert revalidated.status_code == 304
