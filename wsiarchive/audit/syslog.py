"""Syslog for audit messages: RFC 5424 messages sent over TLS (RFC 5425) or UDP (RFC 5426)."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum

# IHE ITI TF-2 3.20.4.2 (ATNA Record Audit Event over syslog): MSGID names the payload's
# format, a DICOM PS3.15 A.5.1 audit message.
MSGID = "IHE+RFC-3881"
BOM = b"\xef\xbb\xbf"  # RFC 5424 6.4: MSG encoded as UTF-8 starts with the BOM
NILVALUE = "-"
MAX_UDP_PAYLOAD = 65507  # RFC 5426 3.2: one message per datagram, at most an IPv4 UDP payload


class Transport(StrEnum):
    """How messages reach the audit record repository."""

    TLS = "tls"  # RFC 5425, octet-counting framing
    UDP = "udp"  # RFC 5426


class Facility(IntEnum):
    """The RFC 5424 6.2.1 facilities an audit message may carry."""

    AUTHPRIV = 10  # security/authorization messages: IHE ATNA's choice
    LOG_AUDIT = 13


class Severity(IntEnum):
    """RFC 5424 6.2.1 severities used here."""

    WARNING = 4  # a failed event
    NOTICE = 5  # a successful one


class AuditSendError(Exception):
    """The audit record repository could not be reached or refused the connection."""


CONFIRM_SECONDS = 0.25  # how long a sent batch waits for a refusal before it counts as sent


def _printable(value: str, limit: int) -> str:
    """An RFC 5424 6.2 header field: PRINTUSASCII, at most *limit* octets, NILVALUE if empty."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return cleaned or NILVALUE


def timestamp(at: datetime) -> str:
    """RFC 5424 6.2.3 TIMESTAMP of a UTC time (naive means UTC), microseconds, 'Z'."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Header:
    """The fixed parts of every message a process sends."""

    hostname: str
    app_name: str = "wsiarchive"
    facility: Facility = Facility.AUTHPRIV
    procid: str = ""

    def message(self, payload: bytes, at: datetime, severity: Severity) -> bytes:
        """One RFC 5424 SYSLOG-MSG: HEADER SP STRUCTURED-DATA SP BOM MSG (section 6)."""
        pri = self.facility * 8 + severity
        fields = [
            f"<{pri}>1",
            timestamp(at),
            _printable(self.hostname, 255),
            _printable(self.app_name, 48),
            _printable(self.procid or str(os.getpid()), 128),
            _printable(MSGID, 32),
            NILVALUE,  # no STRUCTURED-DATA
        ]
        return " ".join(fields).encode("ascii") + b" " + BOM + payload


def frame(message: bytes) -> bytes:
    """RFC 5425 4.3 octet-counting: MSG-LEN SP SYSLOG-MSG."""
    return str(len(message)).encode("ascii") + b" " + message


@dataclass
class SyslogSender:
    """One connection to an audit record repository, reopened when it breaks. ``send``
    returns only when every message went out, or raises AuditSendError after *attempts*
    connections failed; no call blocks longer than *timeout* per socket operation."""

    host: str
    port: int
    transport: Transport = Transport.TLS
    ca_file: str = ""
    certificate: str = ""
    key: str = ""
    timeout: float = 10.0
    attempts: int = 3
    retry_delay: float = 0.2
    _sock: socket.socket | None = None

    def _context(self) -> ssl.SSLContext:
        # RFC 5425 5.1: TLS 1.2 or later; 5.2: the server's certificate is checked (chain to
        # the configured CA, and its name against the host); IHE ATNA adds the client's.
        context = ssl.create_default_context(cafile=self.ca_file or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.certificate:
            context.load_cert_chain(self.certificate, self.key or None)
        return context

    def connect(self) -> None:
        self.close()
        try:
            if self.transport is Transport.UDP:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.settimeout(self.timeout)
                sock.connect((self.host, self.port))
                self._sock = sock
                return
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
            try:
                self._sock = self._context().wrap_socket(raw, server_hostname=self.host)
            except BaseException:
                raw.close()
                raise
        except (OSError, ssl.SSLError) as exc:
            raise AuditSendError(f"{self.host}:{self.port}: {exc}") from exc

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def alive(self, wait: float = 0.0) -> bool:
        """Whether the TLS connection is open: the repository never sends data, so anything
        readable within *wait* seconds is its close or a TLS alert (or TLS 1.3 session
        tickets, which leave it open)."""
        sock = self._sock
        if sock is None:
            return False
        if self.transport is Transport.UDP:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], wait)
            if not readable:
                return True
            sock.setblocking(False)
            try:
                return sock.recv(1) != b""
            except (ssl.SSLWantReadError, BlockingIOError):
                return True
            finally:
                sock.settimeout(self.timeout)
        except (OSError, ValueError):
            return False

    def send(self, messages: Sequence[bytes]) -> None:
        """Send RFC 5424 messages; reconnect and resend them all on a broken connection
        (a repository may so receive some twice: at-least-once)."""
        for message in messages:
            if self.transport is Transport.UDP and len(message) > MAX_UDP_PAYLOAD:
                raise AuditSendError(f"{len(message)} octets do not fit one UDP datagram")
        last: Exception | None = None
        for attempt in range(self.attempts):
            try:
                if not self.alive():
                    self.connect()
                assert self._sock is not None
                if self.transport is Transport.UDP:
                    for message in messages:
                        self._sock.send(message)
                else:
                    self._sock.sendall(b"".join(frame(m) for m in messages))
                    # A repository that refuses us (TLS 1.3 reports a refused client
                    # certificate only after the handshake) or closed says so promptly.
                    if not self.alive(CONFIRM_SECONDS):
                        raise AuditSendError("the repository closed the connection")
                return
            except (AuditSendError, OSError) as exc:
                last = exc
                self.close()
                if attempt + 1 < self.attempts:
                    time.sleep(self.retry_delay * (attempt + 1))
        raise AuditSendError(f"{self.host}:{self.port}: {last}") from last
