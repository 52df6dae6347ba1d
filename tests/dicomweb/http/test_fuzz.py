"""Fuzz of the HTTP mechanics: the multipart reader, the Accept parser and the Range parser
take any input and either answer or raise HTTPError (a 4xx), never another exception; and no
UID path variable reaches the data directory unless it is a UID."""

from __future__ import annotations

import io
from urllib.parse import quote

from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from dicomweb.http.caching import Representation
from dicomweb.http.errors import HTTPError
from dicomweb.http.mediatypes import negotiate, parse_accept
from dicomweb.http.multipart import BodyReader, MultipartReader
from dicomweb.http.ranges import requested_range
from storage.dicom.uids import is_valid_uid
from tests.fuzzing import fuzz

BOUNDARY = "b0undary"
PIECES = st.sampled_from(
    [f"--{BOUNDARY}".encode(), f"\r\n--{BOUNDARY}".encode(), f"--{BOUNDARY}--".encode(),
     b"\r\n", b"\r\n\r\n", b"Content-Type: application/dicom", b":", b" ", b"--", b"\t",
     b"X: " + b"a" * 20000, b"\x00\xff", b"DICM"]
)  # fmt: skip
BODIES = st.lists(st.one_of(PIECES, st.binary(max_size=64)), max_size=30).map(b"".join)


def read_all(body: bytes, boundary: str = BOUNDARY, chunk: int | None = None) -> list[int]:
    """The body's part lengths as the reader gives them."""
    reader = MultipartReader(BodyReader(io.BytesIO(body), len(body), 1 << 30), boundary)
    sizes = []
    for _headers in reader.parts():
        sizes.append(reader.copy_body(lambda _data: None))
    return sizes


@given(body=BODIES, boundary=st.one_of(st.just(BOUNDARY), st.text(max_size=80)))
@fuzz(1000)
def test_fuzz_multipart_reader(body: bytes, boundary: str) -> None:
    try:
        read_all(body, boundary)
    except HTTPError as error:
        assert 400 <= error.status < 500


@given(parts=st.lists(st.binary(max_size=200), min_size=1, max_size=5))
@fuzz(300)
def test_fuzz_well_formed_bodies_read_back(parts: list[bytes]) -> None:
    """Any part content (the delimiter excepted) reads back with its length."""
    delimiter = f"\r\n--{BOUNDARY}".encode()
    parts = [p.replace(delimiter, b"") for p in parts]
    body = b"".join(f"--{BOUNDARY}\r\n\r\n".encode() + p + b"\r\n" for p in parts)
    body += f"--{BOUNDARY}--\r\n".encode()
    assert read_all(body) == [len(p) for p in parts]


ACCEPT_PIECES = st.sampled_from(
    ["multipart/related", "type=", '"', ";", ",", "q=", "0.5", "1", "nan", "inf", "1e3",
     "\u00b2", "\u0661", "*/*", "image/jpeg", "transfer-syntax=*", "application/octet-stream",
     " ", "=", "\\", "type=\"image/jp2\"", "1.000", "0.0001"]
)  # fmt: skip
ACCEPTS = st.one_of(st.lists(ACCEPT_PIECES, max_size=20).map("".join), st.text(max_size=100))
OFFERED = [
    ("image/jpeg", "1.2.840.10008.1.2.4.50"),
    ("application/octet-stream", "1.2.840.10008.1.2.1"),
]


@given(header=ACCEPTS)
@fuzz(1000)
def test_fuzz_accept(header: str) -> None:
    try:
        ranges = parse_accept(header)
    except HTTPError as error:
        assert error.status == 400
        return
    assert all(0 < r.q <= 1 for r in ranges)
    negotiate(ranges, OFFERED)


RANGES = st.one_of(
    st.text(st.characters(exclude_characters="\r\n"), max_size=60),  # a field is one line
    st.from_regex(r"bytes ?= ?[0-9\u00b2\u0661]{0,25} ?- ?[0-9\u0661]{0,25}(,[0-9]*-[0-9]*)?",
                  fullmatch=True),
    st.integers(-(2**80), 2**80).map(lambda n: f"bytes={n}-"),
)  # fmt: skip
APP = Flask(__name__)


@given(header=RANGES, size=st.integers(0, 10**6))
@fuzz(1000)
def test_fuzz_range(header: str, size: int) -> None:
    representation = Representation("key", None, "bulkdata")
    with APP.test_request_context(headers={"Range": header}):
        try:
            wanted = requested_range(size, representation)
        except HTTPError as error:
            assert error.status == 416
            return
    if wanted is not None:
        start, end = wanted
        assert 0 <= start < end <= size
        assert header.isascii()


# -- UID path variables --------------------------------------------------------------------
SEGMENTS = st.one_of(
    st.sampled_from(["..", ".", "%2e%2e", "..%2f..", "%2F", "~", "1.2..3", "1.2.", "/etc/passwd",
                     "1.2.3\x00", "1.02.3", "1." + "2" * 130, "\u0661.2", "1.2.3"]),
    st.text(st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=30),
)  # fmt: skip
PATHS = st.sampled_from(
    ["/studies/{0}", "/studies/{0}/series/{1}", "/studies/{0}/series/{1}/instances/{2}",
     "/studies/{0}/series/{1}/instances/{2}/frames/1", "/studies/{0}/metadata",
     "/studies/{0}/series/{1}/instances/{2}/bulkdata/7FE00010", "/studies/{0}/series",
     "/studies/{0}/series/{1}/instances/{2}/rendered"]
)  # fmt: skip


@given(template=PATHS, uids=st.lists(SEGMENTS, min_size=3, max_size=3))
@fuzz(300)
def test_fuzz_uid_path_variables(corpus_web, template: str, uids: list[str]) -> None:
    """Whatever the UIDs, the answer is below 500; one that is not a UID is 400 (or 404 for
    a path Flask does not route, 308 for '//'), so nothing but a UID ever names a file under
    the data directory (blob keys come from the index, which holds only valid UIDs)."""
    path = "/dicomweb" + template.format(*(quote(u, safe=".%~") for u in uids))
    response = corpus_web.get(path, headers={"Accept": "*/*"})
    assert response.status_code < 500, (path, response.get_data()[:300])
    used = template.count("{")
    if not all(is_valid_uid(u) for u in uids[:used]):
        # 308: Flask's redirect of an empty segment ('//') to the merged path.
        assert response.status_code in (308, 400, 404, 405), (path, response.status_code)
