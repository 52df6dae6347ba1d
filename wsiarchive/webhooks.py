"""Webhooks: the change feed POSTed to each configured URL in order, at least once, with
retries and backoff, by one process at a time of all the servers on one index (a lease on
the URL's cursor row in the index, which also keeps how far delivery has got)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from urllib.error import URLError
from urllib.parse import urlsplit

from dicomweb.transactions.changefeed import DEFAULT_LIMIT, entry
from storage import Archive
from storage.access import Principal, PrincipalKind, Scope
from storage.records import FeedWindow

log = logging.getLogger(__name__)
LEASE_SECONDS = 30.0  # a deliverer that stops renewing its lease loses it after this long
TIMEOUT_SECONDS = 10.0  # of one POST
SIGNATURE = "X-Wsiarchive-Signature"
DELIVERER = Principal("webhooks", PrincipalKind.LOCAL, frozenset({Scope.READ}), source="webhooks")


def parse_urls(text: str) -> list[str]:
    """The webhook URLs of the setting; ValueError for one that is not http(s)."""
    urls = [url.strip() for url in text.split(",") if url.strip()]
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"webhook_urls: {url!r} is not an http(s) URL")
    return urls


def register(archive: Archive, urls: list[str]) -> None:
    """Give each URL its cursor, at the latest event, before the servers take requests: the
    events of a URL start when serve starts with it, not when its deliverer gets going."""
    for url in urls:
        archive.lease_cursor(url, "serve", 0.0)  # creates the cursor; the lease ends at once


def signature(secret: str, body: bytes) -> str:
    """The value of the signature header: sha256= and the hex HMAC-SHA256 of *body*."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class _Target:
    url: str
    failures: int = 0
    retry_at: float = 0.0  # monotonic


@dataclass
class Deliverer:
    """Delivers the change feed to *urls*; run() until *stop* is set."""

    archive: Archive
    urls: list[str]
    secret: str = ""
    poll_seconds: float = 1.0
    max_backoff_seconds: float = 300.0
    holder: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    )

    def run(self, stop: threading.Event) -> None:
        targets = [_Target(url) for url in self.urls]
        while not stop.is_set():
            busy = False
            for target in targets:
                try:
                    busy |= self.step(target)
                except Exception:  # the index unreachable, say: try again at the next poll
                    log.exception("webhook delivery to %s", target.url)
            if not busy:
                stop.wait(self.poll_seconds)

    def step(self, target: _Target) -> bool:
        """One batch to one URL if its turn has come and this process holds its lease; True
        when a batch was delivered (more may be waiting)."""
        if time.monotonic() < target.retry_at:
            return False
        delivered = self.archive.lease_cursor(target.url, self.holder, LEASE_SECONDS)
        if delivered is None:
            return False  # another process delivers to this URL
        changes = self.archive.change_feed(
            FeedWindow(offset=delivered, limit=DEFAULT_LIMIT), who=DELIVERER
        )
        if not changes:
            return False
        body = json.dumps([entry(change, None, False) for change in changes]).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "wsiarchive-webhooks"}
        if self.secret:
            headers[SIGNATURE] = signature(self.secret, body)
        request = urllib.request.Request(target.url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                response.read()
        except (URLError, OSError, ValueError) as exc:  # HTTPError (a non-2xx) is a URLError
            target.failures += 1
            wait = min(self.max_backoff_seconds, 2.0 ** (target.failures - 1))
            target.retry_at = time.monotonic() + wait
            log.warning("webhook %s failed (%s); retrying in %.0f s", target.url, exc, wait)
            return False
        target.failures, target.retry_at = 0, 0.0
        self.archive.advance_cursor(target.url, self.holder, changes[-1].sequence)
        return True
