"""Per-study access through every DICOMweb resource: a token of one access group sees its
studies only, a forbidden study answers exactly as a missing one, scopes are enforced, share
links open one study, revoked and expired tokens are refused, and every look is audited."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from storage import Archive
from storage.access import Scope
from storage.audit import AuditQuery, Operation
from storage.errors import NotFound
from storage.records import StoredInstance
from tests.dicomfiles import multipart_body, read
from tests.inprocess import TESTER, client, open_at, part10, store
from wsiarchive.settings import AnonymousAccess

NEVER_STORED = "1.2.826.0.1.3680043.10.1001.999999"
READ = frozenset({Scope.READ})


@dataclass
class Site:
    archive: Archive
    web: FlaskClient
    leeds: StoredInstance  # a slide of the LEEDS group
    christie: StoredInstance  # an X-ray of the CHRISTIE group


@pytest.fixture
def site(tmp_path: Path, testdata: Path) -> Iterator[Site]:
    archive, settings = open_at(
        tmp_path / "archive",
        access_group_attribute="InstitutionName",
        anonymous_access=AnonymousAccess.OFF,
    )
    slide = read(testdata / "dicom" / "wsi2dcm_jpeg.dcm")
    slide.InstitutionName = "LEEDS"
    xray = read(testdata / "radiology" / "pydicom_CT_small.dcm")
    xray.InstitutionName = "CHRISTIE"
    yield Site(archive, client(archive, settings), store(archive, slide), store(archive, xray))
    archive.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token(site: Site, scopes: frozenset[Scope] = READ, groups: set[str] | None = None) -> str:
    _, text = site.archive.create_token(
        "test", scopes, who=TESTER, groups=frozenset(groups) if groups is not None else None
    )
    return text


def study_uids(web: FlaskClient, path: str, headers: dict[str, str]) -> set[str]:
    response = web.get(path, headers=headers)
    assert response.status_code in (200, 204), response.get_data(as_text=True)
    return {item["0020000D"]["Value"][0] for item in (response.get_json() or [])}


def resources(stored: StoredInstance) -> list[str]:
    study = f"/dicomweb/studies/{stored.study}"
    series = f"{study}/series/{stored.series}"
    instance = f"{series}/instances/{stored.instance}"
    return [
        study,
        f"{study}/metadata",
        f"{study}/rendered",
        f"{study}/thumbnail",
        f"{study}/series?includefield=all",
        f"{study}/instances",
        series,
        f"{series}/metadata",
        f"{series}/thumbnail",
        f"{series}/instances",
        instance,
        f"{instance}/metadata",
        f"{instance}/rendered",
        f"{instance}/thumbnail",
        f"{instance}/frames/1",
        f"{instance}/frames/1/rendered",
        f"{instance}/bulkdata/7FE00010",
    ]


def test_no_token_is_401_with_a_bearer_challenge(site: Site) -> None:
    for path in ("/dicomweb/studies", resources(site.leeds)[0]):
        response = site.web.get(path)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="wsiarchive"')
    wrong = site.web.get("/dicomweb/studies", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert (
        wrong.status_code == 401 and 'error="invalid_request"' in wrong.headers["WWW-Authenticate"]
    )
    forged = site.web.get("/dicomweb/studies", headers=bearer("wsa_0123456789abcdef_guess"))
    assert (
        forged.status_code == 401 and 'error="invalid_token"' in forged.headers["WWW-Authenticate"]
    )


def test_anonymous_loopback_is_not_anonymous_from_elsewhere(tmp_path: Path) -> None:
    archive, settings = open_at(tmp_path / "a", anonymous_access=AnonymousAccess.LOOPBACK)
    web = client(archive, settings)
    assert web.get("/dicomweb/studies").status_code == 200  # Flask's client: 127.0.0.1
    remote = web.get("/dicomweb/studies", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert remote.status_code == 401
    archive.close()


def test_a_token_sees_only_the_studies_of_its_groups(site: Site) -> None:
    leeds = bearer(token(site, groups={"LEEDS"}))
    everyone = bearer(token(site))
    assert study_uids(site.web, "/dicomweb/studies", everyone) == {
        site.leeds.study,
        site.christie.study,
    }
    for path in ("/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances"):
        assert study_uids(site.web, path, leeds) == {site.leeds.study}, path
    # Asked for by UID, or by an attribute only the forbidden study has: nothing.
    by_uid = f"/dicomweb/studies?StudyInstanceUID={site.christie.study}"
    assert study_uids(site.web, by_uid, leeds) == set()
    assert study_uids(site.web, "/dicomweb/studies?ModalitiesInStudy=CT", leeds) == set()
    # No leak through counts: a limited search tells how many more there are of its own.
    page = site.web.get("/dicomweb/instances?limit=1", headers=leeds)
    assert "Warning" not in page.headers or site.christie.instance not in page.headers["Warning"]
    nothing = bearer(token(site, groups=set()))
    assert study_uids(site.web, "/dicomweb/studies", nothing) == set()


def _without(text: str, stored: StoredInstance) -> str:
    for uid in (stored.study, stored.series, stored.instance):
        text = text.replace(uid, "<uid>")
    return text.replace(NEVER_STORED, "<uid>")


def test_a_forbidden_study_answers_exactly_as_a_missing_one(site: Site) -> None:
    leeds = bearer(token(site, groups={"LEEDS"}))
    missing = StoredInstance(NEVER_STORED, NEVER_STORED, NEVER_STORED, "", "", 0, 0, False)
    for forbidden, absent in zip(resources(site.christie), resources(missing), strict=True):
        seen = site.web.get(forbidden, headers=leeds)
        unseen = site.web.get(absent, headers=leeds)
        assert (seen.status_code, _without(seen.get_data(as_text=True), site.christie)) == (
            unseen.status_code,
            _without(unseen.get_data(as_text=True), missing),
        ), forbidden
        if seen.status_code == 200:  # a search: no results
            assert seen.get_json() == [], forbidden
        else:
            assert seen.status_code == 404, forbidden
        assert site.christie.study not in seen.headers.get("Warning", "")
    # Its own group's resources are served.
    for path in resources(site.leeds)[:3]:
        assert site.web.get(path, headers=leeds).status_code == 200, path


def test_scopes_are_enforced(site: Site, testdata: Path) -> None:
    body, content_type = multipart_body(
        [(testdata / "radiology" / "pydicom_MR_small.dcm").read_bytes()]
    )
    reader = bearer(token(site))
    refused = site.web.post(
        "/dicomweb/studies", data=body, content_type=content_type, headers=reader
    )
    assert refused.status_code == 403
    assert "lacks the write scope" in refused.get_json()["error"]
    writer = bearer(token(site, frozenset({Scope.WRITE})))
    stored = site.web.post(
        "/dicomweb/studies", data=body, content_type=content_type, headers=writer
    )
    assert stored.status_code == 200
    assert site.web.get("/dicomweb/studies", headers=writer).status_code == 403  # write only


def test_a_writer_cannot_store_into_a_group_it_may_not_see(site: Site) -> None:
    leeds_writer = bearer(token(site, frozenset({Scope.WRITE}), groups={"LEEDS"}))
    dataset = read_stored(site, site.christie)
    dataset.SOPInstanceUID = "1.2.826.0.1.3680043.10.1001.5"
    body, content_type = multipart_body([part10(dataset)])
    response = site.web.post(
        "/dicomweb/studies", data=body, content_type=content_type, headers=leeds_writer
    )
    assert response.status_code == 409  # every part refused; not a syntax error
    failed = response.get_json()["00081198"]["Value"][0]
    assert failed["00081197"]["Value"] == [0x0124]
    assert len(site.archive.records(site.christie.study, who=TESTER)) == 1


def read_stored(site: Site, stored: StoredInstance):  # type: ignore[no-untyped-def]
    """The stored instance, read back through the archive's own stream."""
    import io

    import pydicom

    record = site.archive.records(stored.study, who=TESTER)[0]
    data = b"".join(site.archive.instance_stream(record, record.transfer_syntax).chunks)
    return pydicom.dcmread(io.BytesIO(data))


def test_share_links_open_one_study_read_only_until_they_expire(site: Site) -> None:
    info, text = site.archive.create_token(
        "Dr Okafor", READ, who=TESTER, study=site.leeds.study, lifetime=timedelta(days=1)
    )
    assert info.study == site.leeds.study and info.scopes == READ
    share = bearer(text)
    assert study_uids(site.web, "/dicomweb/studies", share) == {site.leeds.study}
    assert site.web.get(resources(site.leeds)[1], headers=share).status_code == 200
    assert site.web.get(resources(site.christie)[1], headers=share).status_code == 404
    assert site.web.post("/dicomweb/studies", headers=share).status_code == 403
    # A share link may only be made of a study its maker sees.
    leeds_reader = site.archive.authenticate_token(token(site, groups={"LEEDS"}))
    assert leeds_reader is not None
    with pytest.raises(NotFound):
        site.archive.create_token("x", READ, who=leeds_reader, study=site.christie.study)
    assert site.archive.revoke_token(info.token_id, who=TESTER)
    assert site.web.get("/dicomweb/studies", headers=share).status_code == 401


def test_expired_tokens_are_refused(site: Site) -> None:
    _, text = site.archive.create_token(
        "short", READ, who=TESTER, lifetime=timedelta(microseconds=1)
    )
    assert site.web.get("/dicomweb/studies", headers=bearer(text)).status_code == 401


def test_every_look_is_audited_once_with_who_what_and_outcome(site: Site) -> None:
    info, text = site.archive.create_token("viewer", READ, who=TESTER, groups=frozenset({"LEEDS"}))
    headers = bearer(text)
    frame = resources(site.leeds)[14]
    for _ in range(5):  # a viewer reading the same tile again
        assert site.web.get(frame, headers=headers).status_code == 200
    site.web.get("/dicomweb/studies?PatientID=abc", headers=headers)
    site.web.get(resources(site.christie)[1], headers=headers)  # forbidden: 404, audited
    site.web.get("/dicomweb/studies")  # no credentials
    events = site.archive.audit_events(AuditQuery(), who=TESTER)
    actor = f"token:{info.token_id}"
    retrieves = [e for e in events if e.actor == actor and e.operation == Operation.RETRIEVE]
    assert [(e.study, e.series, e.instance, e.outcome, e.success) for e in retrieves] == [
        (site.leeds.study, site.leeds.series, site.leeds.instance, 200, True),
        (site.christie.study, "", "", 404, False),
    ]
    assert retrieves[0].source == "127.0.0.1"
    # The study's patient is named in the record (the audit message's Patient participant).
    stored = read_stored(site, site.leeds)
    assert (retrieves[0].patient_id, retrieves[0].patient_name) == (
        str(stored.get("PatientID", "")),
        str(stored.get("PatientName", "")),
    )
    xray = [e for e in events if e.study == site.christie.study][0]
    assert xray.patient_id == str(read_stored(site, site.christie).PatientID) != ""
    (search,) = [e for e in events if e.operation == Operation.SEARCH]
    assert search.detail == "PatientID=abc" and search.actor == actor
    (login,) = [e for e in events if e.operation == Operation.LOGIN]
    assert (login.success, login.outcome, login.actor) == (False, 401, "")
    (created,) = [e for e in events if e.operation == Operation.SECURITY]
    assert info.token_id in created.detail


def test_nothing_leaves_unaudited(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = bearer(token(site))

    def full(records: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(site.archive._audit, "add", full)
    served = site.web.get(resources(site.leeds)[1], headers=headers)
    assert served.status_code == 503 and served.headers["Retry-After"] == "30"
    assert "audit trail" in served.get_json()["error"]
    refused = site.web.get(resources(site.christie)[1].replace(site.christie.study, NEVER_STORED))
    assert refused.status_code == 401  # a refusal keeps its status
