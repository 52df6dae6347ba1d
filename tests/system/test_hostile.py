"""Hostile requests over real HTTP: an undecodable STOW-RS part is C000 with 400 (PS3.18
§10.5.3, Table 10.5.3-1), a frame list that repeats a frame is 400 (§8.3.3.1), and a large
frame request streams: the server's peak memory (VmHWM of its worker) hardly grows."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pydicom
import pytest
import requests

from tests.dicomfiles import multipart_body
from tests.dicomweb.transactions.test_stow_hostile import bad_vr
from tests.inprocess import multiframe, part10

MIB = 1 << 20
FRAMES, SIDE = 64, 1024  # 64 frames of 1 MiB each
OCTETS = {"Accept": 'multipart/related; type="application/octet-stream"'}


def peak_rss(server) -> dict[int, int]:  # type: ignore[no-untyped-def]
    """VmHWM in bytes of every process of the server's process group (granian's workers)."""
    group = server.process.pid
    peaks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rpartition(")")[2].split()[2]) != group:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[int(entry.name)] = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return peaks


def growth(before: dict[int, int], after: dict[int, int]) -> int:
    return max(after[pid] - before.get(pid, 0) for pid in after)


@pytest.fixture(scope="module")
def big(fresh_server_module):  # type: ignore[no-untyped-def]
    """One server (one worker, so the worker measured is the one that answers) holding a
    64-frame instance of 64 MiB; the server and the instance's URL."""
    server = fresh_server_module(workers="1")
    dataset = multiframe(FRAMES, SIDE, SIDE, seed=11)
    server.store([part10(dataset)])
    url = (
        f"{server.url}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )
    return server, url


def received(response: requests.Response) -> int:
    return sum(len(chunk) for chunk in response.iter_content(MIB))


def test_all_frames_stream_in_bounded_memory(big) -> None:
    """Before: the 64 frames (64 MiB) were read into a list before the response started."""
    server, url = big
    before = peak_rss(server)
    numbers = ",".join(str(n) for n in range(1, FRAMES + 1))
    with requests.get(f"{url}/frames/{numbers}", headers=OCTETS, stream=True) as response:
        assert response.status_code == 200
        size = received(response)
        assert size == int(response.headers["Content-Length"])
        assert size > FRAMES * SIDE * SIDE
    grown = growth(before, peak_rss(server))
    print(f"VmHWM growth for {FRAMES} frames of 1 MiB: {grown / MIB:.1f} MiB")
    assert grown < 24 * MIB, f"the worker's peak memory grew by {grown / MIB:.1f} MiB"


def test_a_repeated_frame_list_is_400_and_costs_no_memory(big) -> None:
    """Before: 200, 64 copies of frame 1 built in memory (the campaign's 304-byte request
    that made a 201 MB response)."""
    server, url = big
    before = peak_rss(server)
    response = requests.get(f"{url}/frames/{','.join(['1'] * 64)}", headers=OCTETS)
    assert response.status_code == 400, response.status_code
    assert "non-duplicate" in response.json()["error"]
    grown = growth(before, peak_rss(server))
    print(f"VmHWM growth for 64 repeats of frame 1: {grown / MIB:.1f} MiB")
    assert grown < 8 * MIB


def test_an_undecodable_part_is_c000_and_400(fresh_server_module, testdata) -> None:
    """Before: 409, Failure Reason 0110, "internal error"."""
    server = fresh_server_module()
    label = (testdata / "dicom" / "ezwsi_label_test.dcm").read_bytes()
    damaged = bad_vr(label)
    pydicom.dcmread(io.BytesIO(damaged))  # pydicom itself reads the file
    body, content_type = multipart_body([damaged])
    response = requests.post(
        server.url + "/studies",
        data=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
    )
    assert response.status_code == 400, response.text
    (failure,) = response.json()["0008119A"]["Value"]
    assert failure["00081197"]["Value"] == [0xC000]
    assert "cannot be" in response.headers["Warning"]
    assert requests.get(server.url + "/instances").json() == []
    assert not any(os.scandir(server.data_dir / "blobs" / ".staging"))
