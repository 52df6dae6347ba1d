"""The audit trail's export: records fetched in batches, sent, then marked (at-least-once)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from storage.audit import AuditRecord
from wsiarchive.audit.messages import AuditSource, Outcome, audit_message, outcome
from wsiarchive.audit.syslog import (
    AuditSendError,
    Facility,
    Header,
    Severity,
    SyslogSender,
    Transport,
)
from wsiarchive.settings import Settings

log = logging.getLogger(__name__)

Fetch = Callable[[int], list[AuditRecord]]  # the oldest unexported records, at most n
MarkExported = Callable[[list[int]], None]


@dataclass
class AuditExporter:
    """Sends what *fetch* returns and only then calls *mark_exported* with their pks: a
    crash or an unreachable repository between the two sends them again later."""

    fetch: Fetch
    mark_exported: MarkExported
    sender: SyslogSender
    source: AuditSource
    header: Header
    batch_size: int = 100

    def message(self, record: AuditRecord) -> bytes:
        severity = Severity.NOTICE if outcome(record) is Outcome.SUCCESS else Severity.WARNING
        return self.header.message(audit_message(record, self.source), record.at, severity)

    def run_once(self) -> int:
        """Export one batch; the number of records sent. Raises AuditSendError, leaving
        the batch unmarked."""
        records = self.fetch(self.batch_size)
        if not records:
            return 0
        pks = [record.pk for record in records]
        if any(pk is None for pk in pks):
            raise ValueError("audit records to export need their pk")
        self.sender.send([self.message(record) for record in records])
        self.mark_exported([pk for pk in pks if pk is not None])
        return len(records)

    def drain(self) -> int:
        """Export batches until none is left; the number of records sent."""
        total = 0
        while sent := self.run_once():
            total += sent
        return total

    def run(self, stop: threading.Event, interval: float = 5.0) -> None:
        """Drain every *interval* seconds until *stop* is set; failures are logged and
        retried on the next round."""
        while not stop.is_set():
            try:
                self.drain()
            except AuditSendError as exc:
                log.warning("audit export: %s; retrying in %.0f s", exc, interval)
            stop.wait(interval)


def exporter(settings: Settings, fetch: Fetch, mark_exported: MarkExported) -> AuditExporter:
    """The exporter the settings describe (audit_* settings); needs audit_syslog_host."""
    if not settings.audit_syslog_host:
        raise ValueError("audit_syslog_host is not set")
    hostname = socket.getfqdn()
    source = AuditSource(
        settings.audit_source_id or hostname, settings.audit_enterprise_site_id, hostname
    )
    sender = SyslogSender(
        settings.audit_syslog_host,
        settings.audit_syslog_port,
        Transport(settings.audit_syslog_transport),
        settings.audit_syslog_ca,
        settings.audit_syslog_certificate,
        settings.audit_syslog_key,
    )
    header = Header(hostname, facility=Facility(settings.audit_syslog_facility))
    return AuditExporter(fetch, mark_exported, sender, source, header)
