"""Errors in streamed bodies: before the first byte they reach the one error handler (a
status); after it they are logged and end the body where a client can tell it is cut short
(a Content-Length not reached, a multipart body without its close-delimiter)."""

from __future__ import annotations

import email.errors
import email.parser
import email.policy
import logging
import os

from tests.inprocess import TESTER, instance_url, multiframe, store

FRAMES = 100
SIDE = 128  # 100 frames of 128 x 128 bytes: more than is made before a response starts
# (EAGER_BYTES in dicomweb.transactions.frames), so the later frames stream


def _truncate_blob(archive, stored, keep: int) -> None:  # type: ignore[no-untyped-def]
    record = archive.records(stored.study, stored.series, stored.instance, who=TESTER)[0]
    path = archive.staging_area().parent / record.blob_key
    os.truncate(path, keep)


def _pixel_offset(archive, stored, frame: int) -> int:  # type: ignore[no-untyped-def]
    record = archive.records(stored.study, stored.series, stored.instance, who=TESTER)[0]
    table = archive.frame_table(record)
    return int(table.ranges(frame - 1)[0][0])


def _close_delimiter_missing(content_type: str, body: bytes) -> bool:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    return any(isinstance(d, email.errors.CloseBoundaryNotFoundDefect) for d in message.defects)


def _damaged_frames(empty_web, caplog, seed: int, cut_at: int, part_type: str):  # type: ignore[no-untyped-def]
    """All frames of an instance whose blob was cut at frame *cut_at*, as *part_type*
    parts: the response, its whole body, and whether the failure was logged."""
    archive, client = empty_web
    stored = store(archive, multiframe(FRAMES, SIDE, SIDE, seed=seed))
    _truncate_blob(archive, stored, _pixel_offset(archive, stored, cut_at))
    numbers = ",".join(str(n) for n in range(1, FRAMES + 1))
    with caplog.at_level(logging.ERROR, "dicomweb.http.streaming"):
        response = client.get(
            f"{instance_url(stored)}/frames/{numbers}",
            headers={"Accept": f'multipart/related; type="{part_type}"'},
        )
        body = response.get_data()
    logged = any("cut short" in record.getMessage() for record in caplog.records)
    return response, body, logged


def test_stored_frames_cut_short_fall_short_of_their_length(empty_web, caplog) -> None:
    response, body, logged = _damaged_frames(empty_web, caplog, 1, 80, "application/octet-stream")
    assert response.status_code == 200  # sent before the failure
    assert len(body) < int(response.headers["Content-Length"])
    assert _close_delimiter_missing(response.headers["Content-Type"], body)
    assert logged


def test_transcoded_frames_cut_short_lack_the_close_delimiter(empty_web, caplog) -> None:
    response, body, logged = _damaged_frames(empty_web, caplog, 2, 90, "image/jp2")
    assert response.status_code == 200
    assert "Content-Length" not in response.headers  # transcoded sizes are not known ahead
    assert _close_delimiter_missing(response.headers["Content-Type"], body)
    assert body.count(b"Content-Type: image/jp2") >= 80
    assert logged


def test_a_failure_before_the_first_byte_gets_a_status(empty_web) -> None:
    archive, client = empty_web
    stored = store(archive, multiframe(FRAMES, seed=3))
    _truncate_blob(archive, stored, _pixel_offset(archive, stored, 1) + 10)
    response = client.get(
        f"{instance_url(stored)}",
        headers={"Accept": "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90"},
    )
    assert response.status_code == 500
    assert response.json == {"status": 500, "error": "internal error: OSError"}


def test_a_complete_body_ends_as_announced(empty_web) -> None:
    archive, client = empty_web
    stored = store(archive, multiframe(FRAMES, seed=4))
    numbers = ",".join(str(n) for n in range(1, FRAMES + 1))
    response = client.get(
        f"{instance_url(stored)}/frames/{numbers}",
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
    )
    body = response.get_data()
    assert len(body) == int(response.headers["Content-Length"])
    assert not _close_delimiter_missing(response.headers["Content-Type"], body)
