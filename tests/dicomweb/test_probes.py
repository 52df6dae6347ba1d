"""/healthz, /readyz and /metrics in process: answered without a token, each readiness check
failing on its own, who may scrape, counts by route template, never audited nor logged."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from storage import Archive
from storage.access import Scope
from storage.audit import AuditQuery
from tests.dicomfiles import multipart_body
from tests.inprocess import TESTER, client, multiframe, open_at, part10, store
from wsiarchive import run
from wsiarchive.settings import AnonymousAccess, MetricsAccess

FRAMES = 'multipart/related; type="application/octet-stream"'
FRAME_ROUTE = "/dicomweb/studies/<study>/series/<series>/instances/<instance>/frames/<frames>"
ELSEWHERE = {"REMOTE_ADDR": "192.0.2.7"}


@pytest.fixture
def closed(tmp_path: Path) -> Iterator[tuple[Archive, FlaskClient]]:
    """An archive whose DICOMweb needs a token (anonymous access off)."""
    archive, settings = open_at(tmp_path / "archive", anonymous_access=AnonymousAccess.OFF)
    yield archive, client(archive, settings)
    archive.close()


def samples(web: FlaskClient, **environ: str) -> dict[tuple[str, tuple], float]:
    response = web.get("/metrics", environ_base=environ)
    assert response.status_code == 200, response.text
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_liveness_and_readiness_need_no_token(closed) -> None:
    _, web = closed
    assert web.get("/dicomweb/studies").status_code == 401
    live = web.get("/healthz", environ_base=ELSEWHERE)
    assert live.status_code == 200 and live.json == {"status": "alive"}
    assert live.headers["Cache-Control"] == "no-store"
    ready = web.get("/readyz", environ_base=ELSEWHERE)
    assert ready.status_code == 200
    assert ready.json["status"] == "ready"
    checks = ready.json["checks"]
    assert [c["name"] for c in checks] == ["index", "blobs", "draining"]
    assert all(c["ok"] and c["seconds"] >= 0 for c in checks)
    assert web.head("/healthz").status_code == 200
    refused = web.post("/healthz")
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"


def test_readiness_fails_for_an_index_at_another_revision(tmp_path: Path) -> None:
    archive, settings = open_at(tmp_path / "archive")
    web = client(archive, settings)
    with sqlite3.connect(Path(settings.data_dir) / "index.sqlite3") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0002'")
    response = web.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    checks = {c["name"]: c for c in response.json["checks"]}
    assert not checks["index"]["ok"]
    assert checks["index"]["reason"] == "the index is not at this build's schema revision"
    assert checks["blobs"]["ok"] and checks["draining"]["ok"]
    assert web.get("/healthz").status_code == 200
    archive.close()


def test_readiness_fails_when_the_blob_store_cannot_be_written(tmp_path: Path) -> None:
    import shutil

    archive, settings = open_at(tmp_path / "archive")
    web = client(archive, settings)
    shutil.rmtree(settings.blobs / ".staging")
    response = web.get("/readyz")
    assert response.status_code == 503
    checks = {c["name"]: c for c in response.json["checks"]}
    assert checks["index"]["ok"] and not checks["blobs"]["ok"]
    assert checks["blobs"]["reason"] == "the blob store cannot be reached"
    assert str(tmp_path) not in response.text  # no path told to whoever asks
    (settings.blobs / ".staging").mkdir()
    assert web.get("/readyz").status_code == 200
    archive.close()


def test_readiness_fails_while_draining(empty_web, tmp_path: Path, monkeypatch) -> None:
    _, web = empty_web
    monkeypatch.setenv(run.RUN_DIR, str(tmp_path))
    assert web.get("/readyz").status_code == 200
    run.start_draining()
    response = web.get("/readyz")
    assert response.status_code == 503
    checks = {c["name"]: c for c in response.json["checks"]}
    assert not checks["draining"]["ok"] and checks["draining"]["reason"]
    assert web.get("/healthz").status_code == 200


def test_metrics_are_for_loopback_by_default(empty_web) -> None:
    _, web = empty_web
    assert web.get("/metrics").status_code == 200
    refused = web.get("/metrics", environ_base=ELSEWHERE)
    assert refused.status_code == 403
    assert "metrics_access" in refused.json["error"]


def test_metrics_for_anywhere_and_off(tmp_path: Path) -> None:
    archive, settings = open_at(tmp_path / "a", metrics_access=MetricsAccess.ANYWHERE)
    assert client(archive, settings).get("/metrics", environ_base=ELSEWHERE).status_code == 200
    archive.close()
    archive, settings = open_at(tmp_path / "b", metrics=False)
    assert client(archive, settings).get("/metrics").status_code == 404
    archive.close()


def test_metrics_by_token_need_the_metrics_scope(tmp_path: Path) -> None:
    archive, settings = open_at(
        tmp_path / "archive",
        metrics_access=MetricsAccess.TOKEN,
        anonymous_access=AnonymousAccess.OFF,
    )
    web = client(archive, settings)
    _, reader = archive.create_token("viewer", frozenset({Scope.READ}), who=TESTER)
    _, scraper = archive.create_token("prometheus", frozenset({Scope.METRICS}), who=TESTER)
    assert web.get("/metrics").status_code == 401
    assert web.get("/metrics", headers={"Authorization": "Bearer wsa_nonsense"}).status_code == 401
    assert web.get("/metrics", headers={"Authorization": f"Bearer {reader}"}).status_code == 403
    scraped = web.get(
        "/metrics", headers={"Authorization": f"Bearer {scraper}"}, environ_base=ELSEWHERE
    )
    assert scraped.status_code == 200
    assert "wsiarchive_ingest_instances_total" in scraped.text
    # The metrics scope reads no patient data.
    headers = {"Authorization": f"Bearer {scraper}"}
    assert web.get("/dicomweb/studies", headers=headers).status_code == 403
    archive.close()


def test_requests_are_counted_by_route_template(empty_web) -> None:
    archive, web = empty_web
    stored = store(archive, multiframe(3))
    url = (
        f"/dicomweb/studies/{stored.study}/series/{stored.series}/instances/{stored.instance}"
        "/frames/2"
    )
    before = samples(web)
    sizes = 0
    for _ in range(4):
        with web.get(url, headers={"Accept": FRAMES}) as response:
            assert response.status_code == 200
            sizes += len(response.data)
    body, content_type = multipart_body([part10(multiframe(1, seed=7))])
    with web.post("/dicomweb/studies", data=body, headers={"Content-Type": content_type}) as stow:
        assert stow.status_code == 200
    with web.get("/dicomweb/studies/1.2.3/series/4.5/instances/6.7/frames/1") as missing:
        assert missing.status_code == 404
        sizes += len(missing.data)  # an error's body is sent too
    with web.get("/no/such/path") as unmatched:
        assert unmatched.status_code == 404
    after = samples(web)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    count = "wsiarchive_http_request_duration_seconds_count"
    assert delta(count, route=FRAME_ROUTE, method="GET", status="2xx") == 4
    assert delta(count, route=FRAME_ROUTE, method="GET", status="4xx") == 1
    assert delta(count, route="/dicomweb/studies", method="POST", status="2xx") == 1
    assert delta(count, route="unmatched", method="GET", status="4xx") == 1
    assert delta("wsiarchive_http_response_bytes_total", route=FRAME_ROUTE, method="GET") == sizes
    assert delta("wsiarchive_ingest_instances_total", door="stow") == 1
    assert delta("wsiarchive_cache_lookups_total", cache="records", result="hit") >= 3
    labels = {v for (_, pairs) in after for _, v in pairs}
    assert not any(stored.instance in label or "1.2.3" in label for label in labels)


def test_streamed_bodies_are_counted_as_sent(empty_web) -> None:
    archive, web = empty_web
    stored = store(archive, multiframe(2))
    route = "/dicomweb/studies/<study>/series/<series>/instances/<instance>"
    url = f"/dicomweb/studies/{stored.study}/series/{stored.series}/instances/{stored.instance}"
    before = samples(web)
    with web.get(url, headers={"Accept": 'multipart/related; type="application/dicom"'}) as got:
        assert got.status_code == 200
        size = len(got.data)
    after = samples(web)
    name = "wsiarchive_http_response_bytes_total"
    assert (
        value(after, name, route=route, method="GET")
        - value(before, name, route=route, method="GET")
        == size
    )


def test_probes_are_neither_audited_nor_logged(empty_web, caplog) -> None:
    archive, web = empty_web
    audited = len(archive.audit_events(AuditQuery(), who=TESTER))
    with caplog.at_level(logging.INFO, logger="wsiarchive.access"):
        for path in ("/healthz", "/readyz", "/metrics"):
            assert web.get(path).status_code == 200
        assert not caplog.records
        web.get("/dicomweb/studies")
        assert len(caplog.records) == 1
    # The search is audited; the probes were not.
    assert len(archive.audit_events(AuditQuery(), who=TESTER)) == audited + 1
