"""CORS over real HTTP, sent the way a browser on another origin sends it (the Fetch
standard's CORS protocol): a preflight for every kind of DICOMweb resource with the request
headers viewers use, then the actual request, whose response a script may read only with
Access-Control-Allow-Origin and the exposed headers; an origin not listed; credentials only
with an explicit list; Private Network Access."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pydicom
import pytest
import requests

from tests.dicomfiles import multipart_body, read

ORIGIN = "http://localhost:3000"  # the viewer's host
OTHER = "https://evil.example"
SLIDE = "dicom/wsi2dcm_jpeg.dcm"
# Every header a viewer sends that is not CORS-safelisted (Accept with a quoted multipart
# type and Range of a suffix are not safelisted either), lower-cased and sorted as Chromium
# sends them in Access-Control-Request-Headers.
REQUESTED = "accept,authorization,content-type,if-none-match,range"
EXPOSED = {"Content-Range", "ETag", "Warning", "Content-Location"}


@dataclass(frozen=True)
class Stored:
    study: str
    series: str
    instance: str
    sop_class: str


@pytest.fixture(scope="module")
def archives(fresh_server_module, testdata):
    """One archive with an explicit origin and credentials, one that allows any origin."""
    listed = fresh_server_module(cors_origins=ORIGIN, cors_credentials="true")
    anyone = fresh_server_module(cors_origins="*")
    raw = (testdata / SLIDE).read_bytes()
    for server in (listed, anyone):
        server.store([raw])
    dataset = read(testdata / SLIDE)
    stored = Stored(
        dataset.StudyInstanceUID,
        dataset.SeriesInstanceUID,
        dataset.SOPInstanceUID,
        dataset.SOPClassUID,
    )
    return listed, anyone, stored


def _resources(s: Stored) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Each kind of resource: (method, path below the root, request headers)."""
    study = f"/studies/{s.study}"
    series = f"{study}/series/{s.series}"
    instance = f"{series}/instances/{s.instance}"
    octets = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    return {
        "search studies": ("GET", "/studies?ModalitiesInStudy=SM", {}),
        "search series": ("GET", f"{study}/series", {}),
        "search instances": ("GET", f"{series}/instances", {}),
        "search all series": ("GET", "/series?Modality=SM", {}),
        "study metadata": ("GET", f"{study}/metadata", {}),
        "series metadata": ("GET", f"{series}/metadata", {}),
        "instance metadata": ("GET", f"{instance}/metadata", {}),
        "instance": ("GET", instance, {"Accept": 'multipart/related; type="application/dicom"'}),
        "frames": ("GET", f"{instance}/frames/1,2", {"Accept": octets}),
        "bulkdata": ("GET", f"{instance}/bulkdata/7FE00010", {"Accept": "*/*"}),
        "rendered": ("GET", f"{instance}/rendered", {"Accept": "image/jpeg"}),
        "rendered frame": ("GET", f"{instance}/frames/1/rendered", {"Accept": "image/png"}),
        "thumbnail": ("GET", f"{series}/thumbnail", {"Accept": "image/jpeg"}),
        "change feed": ("GET", "/changefeed?offset=0&limit=10", {}),
        "change feed latest": ("GET", "/changefeed/latest", {}),
    }


def _preflight(url: str, method: str, origin: str = ORIGIN, **extra: str) -> requests.Response:
    return requests.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": REQUESTED,
            **extra,
        },
        timeout=30,
    )


def _listed(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",") if item.strip()}


def test_every_resource_is_preflighted_and_readable_from_a_listed_origin(archives) -> None:
    listed, _, stored = archives
    for kind, (method, path, headers) in _resources(stored).items():
        preflight = _preflight(listed.url + path, method)
        # Fetch, CORS-preflight fetch: an ok status, the origin named (not * with
        # credentials), the method and every requested header allowed.
        assert preflight.status_code == 204, kind
        assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN, kind
        assert preflight.headers["Access-Control-Allow-Credentials"] == "true", kind
        assert method.lower() in _listed(preflight.headers["Access-Control-Allow-Methods"])
        assert _listed(REQUESTED) <= _listed(preflight.headers["Access-Control-Allow-Headers"])
        assert "origin" in _listed(preflight.headers["Vary"]), kind
        actual = requests.request(
            method, listed.url + path, headers={"Origin": ORIGIN, **headers}, timeout=60
        )
        assert actual.status_code == 200, (kind, actual.text[:300])
        assert actual.headers["Access-Control-Allow-Origin"] == ORIGIN, kind
        assert actual.headers["Access-Control-Allow-Credentials"] == "true", kind
        exposed = {h.strip() for h in actual.headers["Access-Control-Expose-Headers"].split(",")}
        assert exposed >= EXPOSED, kind
        assert "origin" in _listed(actual.headers["Vary"]), kind


def test_the_exposed_headers_are_the_ones_a_viewer_reads(archives) -> None:
    """ETag and If-None-Match (a 304 a script can see), Range and Content-Range on a
    single-part instance, Warning on a rendered colour image with a window."""
    listed, _, stored = archives
    base = _resources(stored)
    _, path, _ = base["instance"]
    headers = {"Origin": ORIGIN, "Accept": "application/dicom; transfer-syntax=*"}
    whole = requests.get(listed.url + path, headers=headers, timeout=60)
    assert whole.status_code == 200 and whole.headers["ETag"]
    ranged = requests.get(listed.url + path, headers={**headers, "Range": "bytes=0-15"})
    assert ranged.status_code == 206
    assert ranged.content == whole.content[:16]
    assert ranged.headers["Content-Range"] == f"bytes 0-15/{len(whole.content)}"
    assert ranged.headers["Access-Control-Allow-Origin"] == ORIGIN
    again = requests.get(
        listed.url + path, headers={**headers, "If-None-Match": whole.headers["ETag"]}
    )
    assert again.status_code == 304
    assert again.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "ETag" in again.headers["Access-Control-Expose-Headers"]
    _, rendered, _ = base["rendered"]
    warned = requests.get(
        listed.url + rendered + "?window=128,256,linear", headers={"Origin": ORIGIN}
    )
    assert warned.status_code == 200 and "Warning" in warned.headers
    assert warned.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_a_store_and_a_delete_from_a_listed_origin(archives, testdata) -> None:
    listed, _, stored = archives
    dataset = pydicom.dcmread(testdata / "radiology" / "pydicom_CT_small.dcm")
    out = io.BytesIO()
    dataset.save_as(out)
    body, content_type = multipart_body([out.getvalue()])
    preflight = _preflight(listed.url + "/studies", "POST")
    assert preflight.status_code == 204
    assert "post" in _listed(preflight.headers["Access-Control-Allow-Methods"])
    stored_response = requests.post(
        listed.url + "/studies",
        data=body,
        headers={
            "Origin": ORIGIN,
            "Content-Type": content_type,
            "Accept": "application/dicom+json",
        },
        timeout=60,
    )
    assert stored_response.status_code == 200, stored_response.text
    assert stored_response.headers["Access-Control-Allow-Origin"] == ORIGIN
    study = f"/studies/{dataset.StudyInstanceUID}"
    assert _preflight(listed.url + study, "DELETE").status_code == 204
    deleted = requests.delete(listed.url + study, headers={"Origin": ORIGIN}, timeout=60)
    # Anonymous clients may not delete: the refusal, too, is readable by the page's script.
    assert deleted.status_code == 403 and "scope" in deleted.json()["error"]
    assert deleted.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_an_origin_not_listed_reads_nothing(archives) -> None:
    listed, _, stored = archives
    for kind, (method, path, headers) in _resources(stored).items():
        refused = _preflight(listed.url + path, method, origin=OTHER)
        assert refused.status_code == 403, kind
        assert not any(h.lower().startswith("access-control-") for h in refused.headers), kind
        # A simple request is sent without a preflight: the server answers, but without
        # Access-Control-Allow-Origin the browser hands the script a network error.
        actual = requests.get(listed.url + path, headers={"Origin": OTHER, **headers})
        assert "Access-Control-Allow-Origin" not in actual.headers, kind
        assert "Access-Control-Allow-Credentials" not in actual.headers, kind
        assert "origin" in _listed(actual.headers["Vary"]), kind
    # An origin differs by scheme, host and port: none of these is the listed one.
    for near in ("https://localhost:3000", "http://localhost:3001", "http://127.0.0.1:3000"):
        assert _preflight(listed.url + "/studies", "GET", origin=near).status_code == 403
    # A sandboxed page's opaque origin.
    assert _preflight(listed.url + "/studies", "GET", origin="null").status_code == 403


def test_any_origin_gets_star_and_never_credentials(archives) -> None:
    _, anyone, stored = archives
    for kind, (method, path, headers) in _resources(stored).items():
        preflight = _preflight(anyone.url + path, method, origin=OTHER)
        assert preflight.status_code == 204, kind
        assert preflight.headers["Access-Control-Allow-Origin"] == "*", kind
        assert "Access-Control-Allow-Credentials" not in preflight.headers, kind
        # "*" in Access-Control-Allow-Headers would not cover Authorization (Fetch): it
        # must be named.
        assert "authorization" in _listed(preflight.headers["Access-Control-Allow-Headers"])
        actual = requests.get(anyone.url + path, headers={"Origin": OTHER, **headers})
        assert actual.status_code == 200, kind
        assert actual.headers["Access-Control-Allow-Origin"] == "*", kind
        assert "Access-Control-Allow-Credentials" not in actual.headers, kind


def test_a_public_page_may_reach_the_archive_on_a_private_network(archives) -> None:
    """Private Network Access: Chromium asks before a public origin's page reads a server on
    a private address; a listed origin is allowed, one not listed is not."""
    listed, _, _ = archives
    ask = {"Access-Control-Request-Private-Network": "true"}
    allowed = _preflight(listed.url + "/studies", "GET", **ask)
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Private-Network"] == "true"
    refused = _preflight(listed.url + "/studies", "GET", origin=OTHER, **ask)
    assert refused.status_code == 403
    assert "Access-Control-Allow-Private-Network" not in refused.headers
    plain = _preflight(listed.url + "/studies", "GET")
    assert "Access-Control-Allow-Private-Network" not in plain.headers
