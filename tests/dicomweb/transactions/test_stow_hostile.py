"""STOW-RS against undecodable parts and hostile multipart bodies: an instance that cannot
be decoded is Failure Reason C000 with 400 (PS3.18 §10.5.3, Table 10.5.3-1; Table I.2-2:
Cxxx "cannot understand"), never 0110 "internal error"; over-long part headers are a
malformed body (400)."""

from __future__ import annotations

import random

import pytest

from tests.dicomfiles import multipart_body
from tests.inprocess import multiframe, part10

CANNOT_UNDERSTAND = 0xC000


def bad_vr(data: bytes, keyword_tag: bytes = b"\x08\x00\x18\x00UI") -> bytes:
    """*data* with the VR of SOP Instance UID made one DICOM does not define ('U<'):
    pydicom reads the file but cannot decode that element."""
    assert keyword_tag in data
    return data.replace(keyword_tag, keyword_tag[:4] + b"U<", 1)


def bad_length(data: bytes) -> bytes:
    """*data* with Rows (US, 2 bytes) given a length of 3 bytes: not a whole value."""
    rows = b"\x28\x00\x10\x00US\x02\x00"
    assert rows in data
    at = data.index(rows)
    return (
        data[:at]
        + b"\x28\x00\x10\x00US\x03\x00"
        + data[at + 8 : at + 10]
        + b"\x00"
        + data[at + 10 :]
    )


def post(client, parts: list[bytes]):  # type: ignore[no-untyped-def]
    body, content_type = multipart_body(parts)
    return client.post(
        "/dicomweb/studies",
        data=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
    )


def failure_reasons(response) -> list[int]:  # type: ignore[no-untyped-def]
    module = response.json
    items = module.get("00081198", {}).get("Value", []) + module.get("0008119A", {}).get(
        "Value", []
    )
    return [item["00081197"]["Value"][0] for item in items]


@pytest.mark.parametrize("damage", [bad_vr, bad_length], ids=["unknown-vr", "odd-length"])
def test_an_undecodable_instance_is_c000_and_400(empty_web, damage) -> None:  # type: ignore[no-untyped-def]
    """Before: 409 with Failure Reason 0110 and the reason "internal error"."""
    archive, client = empty_web
    response = post(client, [damage(part10(multiframe(2, 8, 8)))])
    assert response.status_code == 400, response.get_data()[:300]
    assert failure_reasons(response) == [CANNOT_UNDERSTAND]
    assert "DICOM data cannot be" in response.headers["Warning"]
    assert client.get("/dicomweb/instances").json == []  # nothing stored


def test_a_good_and_an_undecodable_instance_is_202(empty_web) -> None:
    _, client = empty_web
    good, bad = part10(multiframe(2, 8, 8, seed=1)), bad_vr(part10(multiframe(2, 8, 8, seed=2)))
    response = post(client, [good, bad])
    assert response.status_code == 202
    assert failure_reasons(response) == [CANNOT_UNDERSTAND]


@pytest.mark.parametrize(
    "part",
    [b"hello, this is text\r\n" * 20, bytes(range(256)) * 4, b"", b"\0" * 128 + b"DICM"],
    ids=["text", "garbage", "empty", "preamble-only"],
)
def test_parts_that_are_no_dicom_are_c000_and_400(empty_web, part: bytes) -> None:
    _, client = empty_web
    response = post(client, [part])
    assert response.status_code == 400
    assert failure_reasons(response) == [CANNOT_UNDERSTAND]


def test_damaged_files_are_never_an_internal_error(empty_web) -> None:
    """200 damaged copies of one instance (bytes changed, inserted, cut): each is stored, a
    duplicate, or refused as unreadable; none is 0110 internal error."""
    _, client = empty_web
    original = part10(multiframe(2, 8, 8, seed=7))
    rng = random.Random(20260101)
    for _ in range(200):
        data = bytearray(original)
        for _ in range(rng.randint(1, 6)):
            if len(data) < 140:
                break
            at = rng.randrange(132, len(data))
            action = rng.choice(("set", "insert", "cut"))
            if action == "set":
                data[at] = rng.randrange(256)
            elif action == "insert":
                data[at:at] = rng.randbytes(rng.randint(1, 8))
            else:
                del data[at:]
        response = post(client, [bytes(data)])
        assert response.status_code in (200, 400, 409), response.get_data()[:300]
        assert "internal error" not in response.headers.get("Warning", "")
        assert 0x0110 not in failure_reasons(response)


# -- over-long part headers ----------------------------------------------------------------
def raw_post(client, body: bytes):  # type: ignore[no-untyped-def]
    return client.post(
        "/dicomweb/studies",
        data=body,
        headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
    )


@pytest.mark.parametrize(
    "headers",
    [b"X-Long: " + b"a" * (1 << 20) + b"\r\n", b"".join(b"X-%d: v\r\n" % i for i in range(5000))],
    ids=["1MB-line", "5000-headers"],
)
def test_over_long_part_headers_are_400(empty_web, headers: bytes) -> None:
    """Before: accepted (the bound was checked only while the block was still incomplete,
    and a whole 1 MiB chunk arrives at once)."""
    _, client = empty_web
    data = part10(multiframe(1, 8, 8))
    body = (
        b"--b\r\nContent-Type: application/dicom\r\n" + headers + b"\r\n" + data + b"\r\n--b--\r\n"
    )
    response = raw_post(client, body)
    assert response.status_code == 400, response.get_data()[:300]
    assert "header" in response.json["error"]
