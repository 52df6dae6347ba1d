"""DELETE on the WADO-RS URLs and the change feed, through Flask's test client: statuses,
Azure's field names, parameters, the capabilities, the audit records."""

from __future__ import annotations

import pytest

from storage.audit import AuditQuery, Operation
from tests.inprocess import TESTER, client, instance_url, multiframe, open_at, store


@pytest.fixture
def web(tmp_path):  # type: ignore[no-untyped-def]
    """(archive, test client) where anonymous loopback clients may also delete."""
    archive, settings = open_at(tmp_path / "archive", anonymous_scopes="read write delete")
    yield archive, client(archive, settings)
    archive.close()


def test_delete_statuses_and_the_feed(web) -> None:
    archive, client = web
    stored = store(archive, multiframe(2))
    url = instance_url(stored)
    assert client.get(url + "/frames/1").status_code == 200
    assert client.delete(f"/dicomweb/studies/{stored.study}/series/1.2.x").status_code == 400
    response = client.delete(url)
    assert response.status_code == 204 and response.data == b""
    assert client.get(url + "/frames/1").status_code == 404
    again = client.delete(url)
    assert again.status_code == 404 and "no stored instance" in again.json["error"]
    assert client.delete(f"/dicomweb/studies/{stored.study}").status_code == 404

    feed = client.get("/dicomweb/changefeed")
    assert feed.status_code == 200 and feed.content_type == "application/json"
    created, deleted = feed.json
    assert set(created) == {
        "Sequence", "StudyInstanceUid", "SeriesInstanceUid", "SopInstanceUid", "Action",
        "Timestamp", "State",
    }  # fmt: skip
    assert (created["Sequence"], created["Action"], created["State"]) == (1, "create", "deleted")
    assert (deleted["Sequence"], deleted["Action"]) == (2, "delete")
    assert created["SopInstanceUid"] == stored.instance and created["Timestamp"].endswith("Z")
    assert client.get("/dicomweb/changefeed/latest").json == deleted
    assert client.get("/dicomweb/changefeed?offset=1").json == [deleted]
    assert client.get("/dicomweb/changefeed?offset=2").json == []
    assert client.get("/dicomweb/changefeed?limit=1").json == [created]
    for bad in ("limit=0", "limit=201", "offset=-1", "startTime=yesterday", "includeMetadata=maybe",
                "startTime=2026-01-02T00:00:00Z&endTime=2026-01-01T00:00:00Z"):  # fmt: skip
        response = client.get(f"/dicomweb/changefeed?{bad}")
        assert response.status_code == 400, bad
    window = client.get("/dicomweb/changefeed?startTime=2000-01-01T00:00:00Z&endTime=2000-01-02")
    assert window.json == []

    events = archive.audit_events(AuditQuery(operation=Operation.DELETE), who=TESTER)
    outcomes = sorted((e.outcome, e.success, e.instance) for e in events)
    assert outcomes == [
        (204, True, stored.instance),
        (400, False, ""),
        (404, False, ""),
        (404, False, stored.instance),
    ]
    searches = archive.audit_events(AuditQuery(operation=Operation.SEARCH), who=TESTER)
    assert any(e.detail.startswith("/dicomweb/changefeed?") for e in searches)


def test_the_feed_carries_the_current_metadata(empty_web) -> None:
    archive, client = empty_web
    stored = store(archive, multiframe(1))
    (entry,) = client.get("/dicomweb/changefeed").json
    assert entry["State"] == "current"
    assert entry["Metadata"]["00080018"]["Value"] == [stored.instance]
    (bare,) = client.get("/dicomweb/changefeed?includemetadata=false").json
    assert "Metadata" not in bare
    assert client.get("/dicomweb/changefeed/latest?includeMetadata=false").json == bare


def test_empty_feed_and_capabilities(empty_web) -> None:
    _, client = empty_web
    assert client.get("/dicomweb/changefeed").json == []
    latest = client.get("/dicomweb/changefeed/latest")
    assert latest.status_code == 200 and latest.json is None
    described = client.options("/dicomweb/studies/1.2.3", headers={"Accept": "application/json"})
    assert "DELETE" in described.headers["Allow"]
    assert b"DeleteStudy" in described.data
    assert b"ReadChangeFeed" in client.options("/dicomweb").data


def test_delete_needs_the_delete_scope(tmp_path) -> None:
    archive, settings = open_at(tmp_path, anonymous_scopes="read write")
    web = client(archive, settings)
    stored = store(archive, multiframe(1))
    refused = web.delete(instance_url(stored))
    assert refused.status_code == 403 and "delete scope" in refused.json["error"]
    assert web.get(instance_url(stored) + "/frames/1").status_code == 200
    archive.close()
