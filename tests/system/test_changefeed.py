"""The change feed on real servers: every create, update and delete exactly once and in commit
order, for a follower reading while two servers on one PostgreSQL store and delete at once."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime

import pytest
import requests

from tests.dicomfiles import multipart_body
from tests.inprocess import multiframe, part10

WRITERS = 6  # threads per server
EACH = 12  # instances per thread


def _instances(count: int, seed: int) -> list:  # type: ignore[type-arg]
    made = []
    for number in range(count):
        dataset = multiframe(1, rows=8, columns=8, seed=seed * 1000 + number)
        made.append(dataset)
    return made


def _follow(url: str, seen: list[dict], stop: threading.Event) -> None:  # type: ignore[type-arg]
    """What a follower does: read from the last sequence it saw, until told to stop and the
    feed has nothing more."""
    offset = 0
    while True:
        stopping = stop.is_set()
        page = requests.get(
            f"{url}/changefeed", params={"offset": offset, "limit": 200}, timeout=60
        ).json()
        for entry in page:
            assert entry["Sequence"] == offset + 1, (offset, entry)  # nothing skipped
            seen.append(entry)
            offset = entry["Sequence"]
        if stopping and not page:
            return
        if not page:
            time.sleep(0.01)


def test_every_event_once_in_order_with_concurrent_writers(fresh_server, postgres) -> None:
    url = postgres.database(f"t{uuid.uuid4().hex[:12]}")
    settings = {
        "database_url": url,
        "anonymous_scopes": "read write delete",
        "duplicate_policy": "overwrite",
        "max_uploads": "-1",
    }
    servers = [fresh_server(**settings), fresh_server(**settings)]
    batches = [_instances(EACH, seed) for seed in range(WRITERS * len(servers))]
    seen: list[dict] = []  # type: ignore[type-arg]
    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(servers[1].url, seen, stop))
    follower.start()
    failures: list[str] = []

    def write(server_url: str, batch: list) -> None:  # type: ignore[type-arg]
        for position, dataset in enumerate(batch):
            body, content_type = multipart_body([part10(dataset)])
            stored = requests.post(
                server_url + "/studies", data=body, headers={"Content-Type": content_type}
            )
            if stored.status_code != 200:
                failures.append(stored.text)
            if position % 4 == 1:  # stored again: an update
                requests.post(
                    server_url + "/studies", data=body, headers={"Content-Type": content_type}
                )
            if position % 4 == 2:
                study = dataset.StudyInstanceUID
                deleted = requests.delete(f"{server_url}/studies/{study}")
                if deleted.status_code != 204:
                    failures.append(f"delete {deleted.status_code}")

    threads = [
        threading.Thread(target=write, args=(servers[index % 2].url, batch))
        for index, batch in enumerate(batches)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    stop.set()
    follower.join(60)
    assert not follower.is_alive() and not failures, failures[:3]

    total = WRITERS * len(servers) * EACH
    updates = sum(1 for batch in batches for p in range(len(batch)) if p % 4 == 1)
    deletes = sum(1 for batch in batches for p in range(len(batch)) if p % 4 == 2)
    assert [e["Sequence"] for e in seen] == list(range(1, total + updates + deletes + 1))
    everything = []
    offset = 0
    while page := requests.get(
        f"{servers[0].url}/changefeed", params={"offset": offset, "limit": 200}, timeout=60
    ).json():
        everything += page
        offset = page[-1]["Sequence"]
    key = ("Sequence", "SopInstanceUid", "Action", "Timestamp")
    assert [tuple(e[k] for k in key) for e in seen] == [
        tuple(e[k] for k in key) for e in everything
    ]
    actions = {
        a: sum(1 for e in everything if e["Action"] == a) for a in ("create", "update", "delete")
    }
    assert actions == {"create": total, "update": updates, "delete": deletes}
    times = [datetime.fromisoformat(e["Timestamp"].rstrip("Z")) for e in everything]
    assert times == sorted(times)
    # Each instance's own history: create, [update], [delete], with the states of now.
    by_instance: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for entry in everything:
        by_instance.setdefault(entry["SopInstanceUid"], []).append(entry)
    for batch in batches:
        for position, dataset in enumerate(batch):
            history = by_instance[dataset.SOPInstanceUID]
            expected = {1: ["create", "update"], 2: ["create", "delete"]}.get(
                position % 4, ["create"]
            )
            assert [e["Action"] for e in history] == expected
            states = [e["State"] for e in history]
            if position % 4 == 2:
                assert states == ["deleted", "deleted"]
            else:
                assert states[-1] == "current" and set(states[:-1]) <= {"replaced"}
    latest = requests.get(f"{servers[1].url}/changefeed/latest", timeout=30).json()
    assert latest["Sequence"] == everything[-1]["Sequence"]
    print(f"{len(everything)} events from {len(threads)} writers on 2 servers in {elapsed:.1f} s")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_feed_window_and_metadata(fresh_server, request, backend) -> None:
    settings = {"anonymous_scopes": "read write delete"}
    if backend == "postgresql":
        postgres = request.getfixturevalue("postgres")
        settings["database_url"] = postgres.database(f"t{uuid.uuid4().hex[:12]}")
    server = fresh_server(**settings)
    assert requests.get(f"{server.url}/changefeed/latest", timeout=30).json() is None
    first, second = _instances(2, 99)
    server.store([part10(first)])
    time.sleep(0.05)
    middle = requests.get(f"{server.url}/changefeed/latest", timeout=30).json()["Timestamp"]
    time.sleep(0.05)
    server.store([part10(second)])
    feed = requests.get(f"{server.url}/changefeed", timeout=30).json()
    assert [e["SopInstanceUid"] for e in feed] == [first.SOPInstanceUID, second.SOPInstanceUID]
    assert feed[0]["Metadata"]["00100020"]["Value"] == [first.PatientID]
    later = requests.get(
        f"{server.url}/changefeed",
        params={"startTime": middle, "includeMetadata": "false", "offset": 1},
        timeout=30,
    ).json()
    assert [e["SopInstanceUid"] for e in later] == [second.SOPInstanceUID]
    assert "Metadata" not in later[0]
    before = requests.get(f"{server.url}/changefeed", params={"endTime": middle}, timeout=30).json()
    assert [e["SopInstanceUid"] for e in before] == []  # endTime is exclusive
