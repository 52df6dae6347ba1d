"""Retrieve Frames against hostile frame lists: malformed, repeated or over-long lists are
400 (PS3.18 §8.3.3.1: "one or more non-duplicate frame numbers"), and a large body streams
one frame at a time instead of being made in memory."""

from __future__ import annotations

import pytest

from tests.inprocess import instance_url, multiframe, store

OCTETS = {"Accept": 'multipart/related; type="application/octet-stream"'}


@pytest.fixture
def frames_url(empty_web):  # type: ignore[no-untyped-def]
    archive, client = empty_web
    stored = store(archive, multiframe(4))
    return client, instance_url(stored) + "/frames/"


@pytest.mark.parametrize(
    "frame_list",
    ["9" * 30, "9" * 5000, "\u00b2", "\u0661", "1,\uff12", "+1", "0x1", "1_0",  # numbers
     ",".join(["1"] * 64), "1,1", "1,2,3,4,1", "2,3,2",  # duplicates (before: 200)
     "1,2,3,4,5"],  # longer than NumberOfFrames
)  # fmt: skip
def test_hostile_frame_lists_are_400(frames_url, frame_list: str) -> None:
    client, url = frames_url
    response = client.get(url + frame_list, headers=OCTETS)
    assert response.status_code == 400, response.get_data()[:300]
    assert len(response.json["error"]) < 400


def test_a_frame_beyond_the_instance_is_404(frames_url) -> None:
    client, url = frames_url
    assert client.get(url + "5", headers=OCTETS).status_code == 404
    assert client.get(url + "1,2,3,4", headers=OCTETS).status_code == 200


def _counting_reads(archive, monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """Record every frame the archive reads for a response."""
    read: list[int] = []
    source = archive.frame_source

    def counted(record, syntax):  # type: ignore[no-untyped-def]
        inner = source(record, syntax)
        return lambda number: (read.append(number), inner(number))[1]

    monkeypatch.setattr(archive, "frame_source", counted)
    return read


def test_a_large_body_streams_one_frame_at_a_time(empty_web, monkeypatch) -> None:
    """Before: up to 64 frames were all read into a list before the response started (a
    64-times-repeated list of a 3 MB frame: 201 MB held at once). Now no more than
    EAGER_BYTES (1 MiB) is read before the response starts."""
    archive, client = empty_web
    stored = store(archive, multiframe(32, 256, 256))  # 64 KiB a frame, 2 MiB in all
    read = _counting_reads(archive, monkeypatch)
    numbers = ",".join(str(n) for n in range(1, 33))
    response = client.get(
        f"{instance_url(stored)}/frames/{numbers}", headers=OCTETS, buffered=False
    )
    assert response.status_code == 200
    assert len(read) <= 17, read  # 16 frames make 1 MiB; the one that passes it
    body = response.get_data()
    assert len(read) == 32
    assert len(body) == int(response.headers["Content-Length"])
    assert body.count(b"Content-Location:") == 32


def test_a_small_body_is_made_up_front(empty_web, monkeypatch) -> None:
    archive, client = empty_web
    stored = store(archive, multiframe(4))
    read = _counting_reads(archive, monkeypatch)
    response = client.get(f"{instance_url(stored)}/frames/1,2,3", headers=OCTETS, buffered=False)
    assert response.status_code == 200
    assert read == [1, 2, 3]
    assert int(response.headers["Content-Length"]) == len(response.get_data())
