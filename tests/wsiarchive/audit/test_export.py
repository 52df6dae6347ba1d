"""The audit export over real sockets: RFC 5425 TLS and RFC 5426 UDP to a loopback receiver
(tests/syslog_receiver.py), every message checked against the PS3.15 A.5.1 schema."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from lxml import etree

from storage.audit import AuditRecord, Operation
from tests.syslog_receiver import (
    TlsSyslogReceiver,
    UdpSyslogReceiver,
    make_certificates,
)
from tests.wsiarchive.audit.schema import schema_errors
from tests.wsiarchive.audit.test_messages import EXPECTED, SOURCE, record
from wsiarchive.audit.export import AuditExporter
from wsiarchive.audit.syslog import AuditSendError, Header, SyslogSender, Transport


class Trail:
    """An in-memory audit trail with the two callables the exporter takes."""

    def __init__(self, records: list[AuditRecord]):
        self.records = records
        self.exported: set[int] = set()

    def fetch(self, limit: int) -> list[AuditRecord]:
        return [r for r in self.records if r.pk not in self.exported][:limit]

    def mark_exported(self, pks: list[int]) -> None:
        self.exported.update(pks)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("pki"))


def sender_for(certificates, port: int, **options) -> SyslogSender:
    return SyslogSender(
        "127.0.0.1",
        port,
        Transport.TLS,
        str(certificates.ca),
        str(certificates.client_cert),
        str(certificates.client_key),
        timeout=5,
        retry_delay=0.05,
        **options,
    )


def exporter_for(trail: Trail, sender: SyslogSender, batch_size: int = 100) -> AuditExporter:
    return AuditExporter(
        trail.fetch,
        trail.mark_exported,
        sender,
        SOURCE,
        Header("archive.example.org", procid="42"),
        batch_size,
    )


def records(count: int) -> list[AuditRecord]:
    base = datetime(2026, 1, 2, 3, 4, 5)
    operations = list(Operation)
    return [
        record(operations[i % len(operations)], pk=i + 1, at=base + timedelta(seconds=i))
        for i in range(count)
    ]


@pytest.mark.parametrize("operation", list(Operation), ids=str)
def test_each_operation_over_tls(certificates, operation):
    failed = record(operation, pk=2, success=False, outcome=500, detail="disk full")
    trail = Trail([record(operation, pk=1, detail="/studies?StudyDate=20260101"), failed])
    with TlsSyslogReceiver(certificates) as receiver:
        assert exporter_for(trail, sender_for(certificates, receiver.port)).drain() == 2
        messages = receiver.wait_for(2)
    assert receiver.errors == []
    assert trail.exported == {1, 2}
    assert [(m.facility, m.severity) for m in messages] == [(10, 5), (10, 4)]
    for message in messages:
        assert message.version == 1
        assert message.timestamp.endswith("Z")
        assert (message.hostname, message.app_name, message.procid) == (
            "archive.example.org",
            "wsiarchive",
            "42",
        )
        assert message.msgid == "IHE+RFC-3881"
        assert message.structured_data == "-"
        assert message.bom  # RFC 5424 6.4
        assert schema_errors(message.msg) == []
        event_id = etree.fromstring(message.msg).find("EventIdentification/EventID")
        assert event_id.get("csd-code") == EXPECTED[operation][0]
    outcomes = [
        etree.fromstring(m.msg).find("EventIdentification").get("EventOutcomeIndicator")
        for m in messages
    ]
    assert outcomes == ["0", "8"]


def test_receiver_restart_loses_nothing(certificates):
    """The repository restarts between batches and is down for one: the exporter notices the
    closed connection, keeps the unsent batch unmarked, and later sends every record."""
    trail = Trail(records(30))
    receiver = TlsSyslogReceiver(certificates).start()
    exporter = exporter_for(trail, sender_for(certificates, receiver.port), batch_size=10)
    try:
        assert exporter.run_once() == 10
        receiver.wait_for(10)
        receiver.stop()  # closes the exporter's connection too
        restarted = replace(receiver, messages=[], errors=[], _connections=[], _threads=[])
        restarted.start()
        assert exporter.run_once() == 10  # over a new connection, not into the closed one
        restarted.wait_for(10)
        restarted.stop()
        with pytest.raises(AuditSendError):
            exporter.run_once()  # nobody listens
        assert len(trail.exported) == 20
        again = replace(receiver, messages=[], errors=[], _connections=[], _threads=[])
        again.start()
        assert exporter.drain() == 10
        again.wait_for(10)
        again.stop()
    finally:
        exporter.sender.close()
    received = [
        etree.fromstring(m.msg).find("EventIdentification").get("EventDateTime")
        for r in (receiver, restarted, again)
        for m in r.messages
    ]
    sent = [r.at.isoformat(timespec="microseconds") + "Z" for r in trail.records]
    assert set(received) == set(sent)  # at-least-once: all of them
    assert trail.exported == {r.pk for r in trail.records}


def test_untrusted_repository_certificate_is_refused(certificates, tmp_path):
    other = make_certificates(tmp_path / "other", "other")
    trail = Trail(records(1))
    receiver = TlsSyslogReceiver(other, require_client_cert=False)
    with receiver, pytest.raises(AuditSendError, match="CERTIFICATE_VERIFY_FAILED"):
        exporter_for(trail, sender_for(certificates, receiver.port, attempts=1)).drain()
    assert trail.exported == set()
    assert receiver.messages == []


def test_client_certificate_is_presented(certificates):
    """The receiver requires one (mutual TLS): without it nothing gets through."""
    trail = Trail(records(1))
    with TlsSyslogReceiver(certificates) as receiver:
        sender = SyslogSender(
            "127.0.0.1", receiver.port, ca_file=str(certificates.ca), timeout=5, attempts=1
        )
        with pytest.raises(AuditSendError):
            exporter_for(trail, sender).drain()
    assert trail.exported == set()


def test_udp(certificates):
    trail = Trail(records(2))
    with UdpSyslogReceiver() as receiver:
        sender = SyslogSender("127.0.0.1", receiver.port, Transport.UDP, timeout=5)
        assert exporter_for(trail, sender).drain() == 2
        messages = [receiver.receive(), receiver.receive()]
    for message in messages:
        assert message.msgid == "IHE+RFC-3881"
        assert schema_errors(message.msg) == []
