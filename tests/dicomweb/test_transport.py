"""Transport rules in process: security headers, CORS (the Fetch standard's protocol), the
Host trusted in URLs, and the limits per client (429, 503, 413 for a chunked body)."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest

from dicomweb import create_app
from dicomweb.http.cors import ALLOWED_HEADERS, EXPOSED_HEADERS, Policy
from dicomweb.limits import RateLimiter
from storage.access import Scope
from tests.dicomfiles import multipart_body
from tests.inprocess import TESTER, multiframe, part10
from wsiarchive.settings import AnonymousAccess

ORIGIN = "https://viewer.example.org"


READ = frozenset({Scope.READ})


@pytest.fixture
def web(empty_archive, tmp_path):
    """A client factory: Flask's test client over the empty archive with *values* set."""
    from tests.inprocess import settings_for

    def make(**values: object):
        settings = replace(settings_for(tmp_path / "archive"), **values)
        return create_app(empty_archive, settings).test_client()

    return make


def _stow_body() -> tuple[bytes, str]:
    return multipart_body([part10(multiframe(1))])


# -- security headers ----------------------------------------------------------------------------
def test_every_response_carries_the_security_headers(web) -> None:
    client = web()
    for response in (client.get("/dicomweb/studies"), client.get("/dicomweb/nothing")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"  # search results name patients
        assert response.headers["Server"] == "wsiarchive"
        # Plain HTTP: HSTS would be ignored (RFC 6797 §8.1), so it is not sent.
        assert "Strict-Transport-Security" not in response.headers


def test_hsts_over_tls_or_behind_a_tls_proxy(web) -> None:
    over_tls = web().get("/dicomweb/studies", base_url="https://archive.test")
    assert over_tls.headers["Strict-Transport-Security"].startswith("max-age=")
    proxied = web(behind_tls_proxy=True).get("/dicomweb/studies")
    assert proxied.headers["Strict-Transport-Security"].startswith("max-age=")


# -- CORS ------------------------------------------------------------------------------------------
def test_cors_off_by_default(web) -> None:
    response = web().get("/dicomweb/studies", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_listed_origin_may_read_responses(web) -> None:
    client = web(cors_origins=f"{ORIGIN}, http://localhost:3000")
    response = client.get("/dicomweb/studies", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response.headers["Vary"]
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == set(EXPOSED_HEADERS)
    assert "Access-Control-Allow-Credentials" not in response.headers
    # Errors too: a script must be able to read why its request failed.
    missing = client.get("/dicomweb/studies/1.2.3/metadata", headers={"Origin": ORIGIN})
    assert missing.status_code == 404
    assert missing.headers["Access-Control-Allow-Origin"] == ORIGIN
    other = client.get("/dicomweb/studies", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Origin" in other.headers["Vary"]  # a cache must not give it to a listed origin


def test_preflight_comes_before_the_capabilities(web) -> None:
    client = web(cors_origins=ORIGIN, cors_credentials=True)
    for path in ("/dicomweb", "/dicomweb/studies", "/dicomweb/studies/1.2/series/3.4/instances"):
        response = client.options(
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert response.status_code == 204, path
        assert response.data == b""  # not the WADL
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
        assert methods == {"GET", "POST", "DELETE", "OPTIONS"}  # the route table's
        allowed = {h.strip() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
        assert allowed == set(ALLOWED_HEADERS)
        assert int(response.headers["Access-Control-Max-Age"]) > 0
    refused = client.options(
        "/dicomweb/studies",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    # A plain OPTIONS still gets the capabilities (PS3.18 §8.9).
    described = client.options("/dicomweb/studies")
    assert described.status_code == 200 and b"resource" in described.data


def test_private_network_access_is_allowed_to_listed_origins_only(web) -> None:
    client = web(cors_origins=ORIGIN)
    ask = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Private-Network": "true"}
    allowed = client.options("/dicomweb/studies", headers={"Origin": ORIGIN, **ask})
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Private-Network"] == "true"
    refused = client.options("/dicomweb/studies", headers={"Origin": "https://evil.example", **ask})
    assert refused.status_code == 403
    assert "Access-Control-Allow-Private-Network" not in refused.headers


def test_any_origin_without_credentials(web) -> None:
    response = web(cors_origins="*").get("/dicomweb/studies", headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize(
    ("origins", "credentials", "message"),
    [
        ("*", True, "cannot be used with cors_origins = \\*"),
        ("", True, "needs cors_origins"),
        ("*, https://a.example", False, "list no other"),
        ("https://a.example/path", False, "not an origin"),
    ],
)
def test_meaningless_cors_settings_are_refused(origins, credentials, message) -> None:
    with pytest.raises(ValueError, match=message):
        Policy.of(origins, credentials, ["GET"])


# -- Host header trust -----------------------------------------------------------------------------
def _retrieve_url(client, host: str) -> str:
    body, content_type = _stow_body()
    response = client.post(
        "/dicomweb/studies", data=body, headers={"Content-Type": content_type, "Host": host}
    )
    assert response.status_code == 200, response.data
    return response.json["00081199"]["Value"][0]["00081190"]["Value"][0]


def test_an_unlisted_host_does_not_reach_urls(web) -> None:
    """Was: any well-formed Host was echoed into RetrieveURL (a poisoned cache or a phishing
    link in an answer)."""
    client = web(base_url="", host="127.0.0.1", port=8080)
    assert _retrieve_url(client, "evil.example").startswith("http://127.0.0.1:8080/dicomweb/")
    assert _retrieve_url(client, "localhost:8080").startswith("http://localhost:8080/dicomweb/")
    listed = web(base_url="", allowed_hosts="pacs.example.org:8443, pacs.example.org")
    assert _retrieve_url(listed, "PACS.example.org:8443").startswith(
        "http://pacs.example.org:8443/dicomweb/"
    )
    assert _retrieve_url(listed, "localhost:8080").startswith("http://127.0.0.1:8080/")
    based = web(base_url="https://pacs.example.org/dicomweb")
    assert _retrieve_url(based, "evil.example").startswith("https://pacs.example.org/dicomweb/")


# -- limits ----------------------------------------------------------------------------------------
def test_token_bucket() -> None:
    now = [0.0]
    bucket = RateLimiter(rate=2.0, burst=3.0, clock=lambda: now[0])
    assert [bucket.take("a") for _ in range(3)] == [0, 0, 0]
    assert bucket.take("a") == pytest.approx(0.5)  # one token comes every 0.5 s
    assert bucket.take("b") == 0  # each client has its own bucket
    now[0] = 0.5
    assert bucket.take("a") == 0
    assert bucket.take("a") > 0
    now[0] = 100.0
    assert [bucket.take("a") for _ in range(3)] == [0, 0, 0]  # never more than the burst
    assert bucket.take("a") > 0


def test_rate_limit_answers_429_with_retry_after(web) -> None:
    client = web(rate_limit=0.5, rate_burst=2, anonymous_access=AnonymousAccess.ANYWHERE)
    assert [client.get("/dicomweb/studies").status_code for _ in range(2)] == [200, 200]
    refused = client.get("/dicomweb/studies")
    assert refused.status_code == 429  # RFC 6585 §4
    assert int(refused.headers["Retry-After"]) == 2
    assert "too many requests" in refused.json["error"]
    other = client.get("/dicomweb/studies", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200


def test_limits_key_on_the_authenticated_subject(web, empty_archive) -> None:
    # Authentication runs before the limits: two tokens from one address count apart.
    client = web(rate_limit=0.1, anonymous_access=AnonymousAccess.OFF)
    alice, bob = (
        {"Authorization": "Bearer " + empty_archive.create_token(name, READ, who=TESTER)[1]}
        for name in ("alice", "bob")
    )
    assert client.get("/dicomweb/studies", headers=alice).status_code == 200
    assert client.get("/dicomweb/studies", headers=alice).status_code == 429
    assert client.get("/dicomweb/studies", headers=bob).status_code == 200


def test_in_flight_and_upload_limits(web, empty_archive, tmp_path) -> None:
    from tests.inprocess import settings_for

    settings = replace(
        settings_for(tmp_path / "a"),
        max_in_flight=1,
        max_uploads=1,
        anonymous_access=AnonymousAccess.ANYWHERE,
    )
    app = create_app(empty_archive, settings)
    client = app.test_client()
    held = client.get("/dicomweb/studies", buffered=False)  # its body not yet sent: in flight
    busy = client.get("/dicomweb/studies")
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
    held.close()  # sent: the slot is free again
    assert client.get("/dicomweb/studies").status_code == 200
    uploads = app.test_client()
    body, content_type = _stow_body()
    upload = uploads.post(
        "/dicomweb/studies",
        data=body,
        headers={"Content-Type": content_type},
        environ_base={"REMOTE_ADDR": "10.0.0.1"},
        buffered=False,
    )
    assert upload.status_code == 200
    overload = uploads.post(
        "/dicomweb/studies",
        data=body,
        headers={"Content-Type": content_type},
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
    )
    assert overload.status_code == 503 and int(overload.headers["Retry-After"]) > 0
    upload.close()


def test_a_chunked_body_over_the_limit_gets_413(web) -> None:
    body, content_type = _stow_body()
    client = web(max_request_bytes=len(body) - 1)

    # No Content-Length: the size is found only while reading (as with chunked coding).
    response = client.post(
        "/dicomweb/studies",
        input_stream=io.BytesIO(body),
        headers={"Content-Type": content_type, "Transfer-Encoding": "chunked"},
    )
    assert response.status_code == 413
    assert "Retry-After" not in response.headers  # the same body never fits
    assert client.get("/dicomweb/studies").json == []  # nothing of it was stored
