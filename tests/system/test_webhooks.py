"""Webhooks on real servers: a real HTTP receiver started here gets the change feed in order,
signed, once per event although two servers on one PostgreSQL both run a deliverer, after
refusing the first attempts (retries with backoff), and from its cursor after a restart."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from tests.inprocess import multiframe, part10
from tests.servers import free_port

SECRET = "webhook-test-secret"


class Receiver:
    """An HTTP server on loopback that refuses its first *failures* POSTs with 503 and
    records every POST: (status answered, headers, body)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[int, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 503 if receiver.failures > 0 else 200
                receiver.failures -= 1
                receiver.received.append((status, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def accepted(self) -> list[list[dict]]:  # type: ignore[type-arg]
        """The batches answered 200, each checked against its signature."""
        batches = []
        for status, headers, body in list(self.received):
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-Wsiarchive-Signature"] == expected
            if status == 200:
                batches.append(json.loads(body))
        return batches

    def wait_for(self, sequence: int, timeout: float = 60) -> list[dict]:  # type: ignore[type-arg]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = [event for batch in self.accepted() for event in batch]
            if events and events[-1]["Sequence"] >= sequence:
                return events
            time.sleep(0.1)
        raise AssertionError(f"sequence {sequence} not delivered: {self.received[-3:]}")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait_for_cursor(database_url: str, sequence: int, timeout: float = 30) -> None:
    """Until the index records that the webhook URL has been given *sequence*."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as db:
        while time.monotonic() < deadline:
            row = db.execute("SELECT max(sequence) FROM change_cursor").fetchone()
            db.commit()
            if row is not None and row[0] is not None and row[0] >= sequence:
                return
            time.sleep(0.1)
    raise AssertionError(f"the webhook cursor never reached {sequence}")


def test_webhooks_in_order_once_with_retries_and_a_cursor(fresh_server, postgres) -> None:
    receiver = Receiver(failures=2)
    try:
        settings = {
            "database_url": postgres.database(f"t{uuid.uuid4().hex[:12]}"),
            "blob_dir": str(fresh_server.root / "shared-blobs"),
            "anonymous_scopes": "read write delete",
            "webhook_urls": receiver.url,
            "webhook_secret": SECRET,
            "webhook_poll_seconds": "0.1",
            "webhook_max_backoff_seconds": "0.5",
        }
        a, b = fresh_server(**settings), fresh_server(**settings)
        datasets = [multiframe(1, rows=8, columns=8, seed=seed) for seed in range(10)]
        for number, dataset in enumerate(datasets):
            (a if number % 2 else b).store([part10(dataset)])
        deleted = datasets[3]
        assert requests.delete(f"{a.url}/studies/{deleted.StudyInstanceUID}").status_code == 204
        events = receiver.wait_for(11)
        assert receiver.received[0][0] == receiver.received[1][0] == 503  # refused, retried
        # In order, each event once: two deliverers, one lease.
        assert [e["Sequence"] for e in events] == list(range(1, 12))
        assert [e["SopInstanceUid"] for e in events] == [
            *(d.SOPInstanceUID for d in datasets),
            deleted.SOPInstanceUID,
        ]
        assert [e["Action"] for e in events] == ["create"] * 10 + ["delete"]
        assert "Metadata" not in events[0]
        # Delivery is at least once: a batch answered 200 is recorded in the cursor just after.
        # Stop the servers once it is, so that what follows tests the cursor, not that race.
        _wait_for_cursor(settings["database_url"], 11)
        delivered = len(receiver.received)
        a.stop()
        b.stop()
        # A new server carries on from the cursor kept in the index: nothing delivered again.
        c = fresh_server(**settings)
        c.store([part10(multiframe(1, rows=8, columns=8, seed=77))])
        events = receiver.wait_for(12)
        assert [e["Sequence"] for e in events] == list(range(1, 13))
        assert all(
            json.loads(body)[0]["Sequence"] == 12 for _, _, body in receiver.received[delivered:]
        )
    finally:
        receiver.stop()
