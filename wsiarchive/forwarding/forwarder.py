"""The forwarder: new instances matched against forward_rules into the outbox (a leased
cursor on the change feed, as webhooks have), and each destination's queue sent in order
with retries and exponential backoff kept in the outbox, so that a restart resumes."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests

from storage import Archive
from storage.access import Principal, PrincipalKind, Scope
from storage.errors import ArchiveError
from storage.records import Action, FeedWindow, ForwardItem, InstanceFile, State, StoredRecord
from wsiarchive.forwarding.config import Destination, Kind, Rule
from wsiarchive.forwarding.stow import stow

log = logging.getLogger(__name__)
LEASE_SECONDS = 30.0  # a forwarder that stops renewing its lease loses it after this long
ROUTER = "forward:rules"  # the change feed cursor of the rules
BATCH = 50  # instances sent per turn of a destination (one association for C-STORE)
FEED_BATCH = 500  # change feed events matched per turn
FORWARDER = Principal("forwarder", PrincipalKind.LOCAL, frozenset({Scope.READ}), source="forward")


def lease_name(destination: str) -> str:
    """The cursor whose lease lets one process at a time send to *destination*."""
    return f"forward:to:{destination}"


def register(archive: Archive, rules: Sequence[Rule]) -> None:
    """Give the rules their cursor at the latest event before the servers take requests:
    instances stored from the start of serve with rules on are forwarded."""
    if rules:
        archive.lease_cursor(ROUTER, "serve", 0.0)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Forwarder:
    """Queues and sends; run() until *stop* is set, or drain() once."""

    archive: Archive
    destinations: dict[str, Destination]
    rules: list[Rule]
    ae_title: str = "WSIARCHIVE"
    poll_seconds: float = 1.0
    max_backoff_seconds: float = 300.0
    max_attempts: int = 0
    holder: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    )
    http: requests.Session = field(default_factory=requests.Session)

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                if not self.turn():
                    stop.wait(self.poll_seconds)
        finally:
            self.release()

    def release(self) -> None:
        """Give up the leases this forwarder holds (router and destinations), so that the
        next forwarder, a `forward --once` run right after, say, need not wait them out."""
        names = [ROUTER, *(lease_name(name) for name in self.destinations)]
        for name in names:
            try:
                self.archive.lease_cursor(name, self.holder, 0.0)  # another's lease stays
            except Exception:  # the index unreachable: the lease runs out by itself
                log.warning("could not release the forwarding lease %s", name)

    def turn(self) -> bool:
        """Match new events, then one batch to each destination; True when anything moved
        (more may be waiting)."""
        busy = False
        try:
            busy |= self.route()
        except Exception:  # the index unreachable, say: try again at the next poll
            log.exception("forward_rules")
        for destination in self.destinations.values():
            try:
                busy |= self.send(destination)
            except Exception:
                log.exception("forwarding to %s", destination.name)
        return busy

    def route(self) -> bool:
        """Queue the instances of the next change feed events that match a rule."""
        if not self.rules:
            return False
        delivered = self.archive.lease_cursor(ROUTER, self.holder, LEASE_SECONDS)
        if delivered is None:
            return False
        changes = self.archive.change_feed(
            FeedWindow(offset=delivered, limit=FEED_BATCH), who=FORWARDER
        )
        if not changes:
            return False
        stored = [c for c in changes if c.action != Action.DELETE and c.state != State.DELETED]
        documents = self.archive.change_documents(stored)
        sources = self.archive.stored_by([change.instance for change in stored])
        # Per destination, runs of new and of updated instances in feed order: an update
        # (an overwrite, a correction) queues a row sent or failed before anew.
        queues: dict[str, list[tuple[bool, list[tuple[str, str, str]]]]] = {}
        for change in stored:
            document = documents.get(change.instance)
            if document is None:
                continue  # deleted since
            source = sources.get(change.instance, "")
            names = {n for rule in self.rules if rule.matches(document, source) for n in rule.to}
            again = change.action == Action.UPDATE
            for name in sorted(names):
                runs = queues.setdefault(name, [])
                if not runs or runs[-1][0] != again:
                    runs.append((again, []))
                runs[-1][1].append((change.study, change.series, change.instance))
        for name, runs in queues.items():
            for again, items in runs:
                self.archive.enqueue_forward(name, items, again=again)
        self.archive.advance_cursor(ROUTER, self.holder, changes[-1].sequence)
        return True

    def send(self, destination: Destination) -> bool:
        """One batch of *destination*'s queue, in order, stopping at the first failure."""
        if (
            self.archive.lease_cursor(lease_name(destination.name), self.holder, LEASE_SECONDS)
            is None
        ):
            return False  # another process sends to it
        due = self.archive.forward_due(destination.name, BATCH)
        if not due:
            return False
        files: list[tuple[ForwardItem, StoredRecord]] = []
        for item in due:
            try:
                record = self.archive.instance(
                    item.study, item.series, item.instance, fresh=True, who=FORWARDER
                )
            except ArchiveError as exc:  # deleted since it was queued
                self.archive.forward_failed(item.pk, f"not stored any more: {exc}", None)
                continue
            files.append((item, record))
        if destination.kind is Kind.DICOMWEB:
            return self._stow(destination, files)
        return self._c_store(destination, files)

    def _outcome(self, destination: Destination, item: ForwardItem, reason: str | None) -> bool:
        """Record one outcome; True to go on with the batch."""
        if reason is None:
            self.archive.forward_sent(item.pk)
            return True
        attempts = item.attempts + 1
        final = self.max_attempts > 0 and attempts >= self.max_attempts
        # The exponent bounded: 2.0 ** 1024 overflows, and 2 ** 60 s is past any cap.
        wait = min(self.max_backoff_seconds, 2.0 ** min(attempts - 1, 60))
        retry_at = None if final else _now() + timedelta(seconds=wait)
        self.archive.forward_failed(item.pk, reason, retry_at)
        log.warning(
            "forwarding %s to %s failed (attempt %d: %s); %s",
            item.instance,
            destination.name,
            attempts,
            reason,
            "giving up" if final else f"retrying in {wait:.0f} s",
        )
        return False

    def _stow(
        self, destination: Destination, files: list[tuple[ForwardItem, StoredRecord]]
    ) -> bool:
        sent = False
        for item, record in files:
            try:
                stow(self.http, self.archive, destination, record)
            except (requests.RequestException, RuntimeError, OSError, ArchiveError) as exc:
                self._outcome(destination, item, str(exc))
                return sent
            sent = self._outcome(destination, item, None)
        return sent

    def _c_store(
        self, destination: Destination, files: list[tuple[ForwardItem, StoredRecord]]
    ) -> bool:
        from dimse.forwarding import store

        items = {record.instance: item for item, record in files}
        sent = [False]

        def done(file: InstanceFile, reason: str | None) -> bool:
            going_on = self._outcome(destination, items[file.instance], reason)
            sent[0] |= going_on
            return going_on

        store(
            self.archive,
            self.ae_title,
            (destination.ae_title, destination.host, destination.port),
            [
                InstanceFile(
                    r.study, r.series, r.instance, r.sop_class, r.transfer_syntax, r.blob_key
                )
                for _, r in files
            ],
            done,
        )
        return sent[0]
