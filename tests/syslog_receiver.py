"""A syslog receiver for the tests: RFC 5425 (TLS, octet counting) and RFC 5426 (UDP) on
loopback, parsing RFC 5424 messages independently of wsiarchive.audit, with a CA and
certificates of its own made with cryptography."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.servers import free_port

# RFC 5424 6: HEADER = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID,
# then SP STRUCTURED-DATA [SP MSG]; here STRUCTURED-DATA is only ever NILVALUE.
HEADER = re.compile(
    rb"<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) (?P<timestamp>\S+) (?P<hostname>\S{1,255}) "
    rb"(?P<app>\S{1,48}) (?P<procid>\S{1,128}) (?P<msgid>\S{1,32}) (?P<sd>-|\[.*?\])"
    rb"(?: (?P<msg>.*))?\Z",
    re.DOTALL,
)
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)\Z")
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class SyslogMessage:
    """One received RFC 5424 message."""

    facility: int
    severity: int
    version: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    structured_data: str
    msg: bytes  # without the BOM
    bom: bool

    @classmethod
    def parse(cls, data: bytes) -> SyslogMessage:
        match = HEADER.match(data)
        if match is None:
            raise ValueError(f"not an RFC 5424 message: {data[:120]!r}")
        pri = int(match["pri"])
        if pri > 191:  # RFC 5424 6.2.1
            raise ValueError(f"PRI {pri} out of range")
        timestamp = match["timestamp"].decode("ascii")
        if not TIMESTAMP.match(timestamp):
            raise ValueError(f"TIMESTAMP {timestamp!r} is not RFC 3339")
        msg = match["msg"] or b""
        return cls(
            facility=pri // 8,
            severity=pri % 8,
            version=int(match["version"]),
            timestamp=timestamp,
            hostname=match["hostname"].decode("ascii"),
            app_name=match["app"].decode("ascii"),
            procid=match["procid"].decode("ascii"),
            msgid=match["msgid"].decode("ascii"),
            structured_data=match["sd"].decode("ascii"),
            msg=msg.removeprefix(BOM),
            bom=msg.startswith(BOM),
        )


@dataclass(frozen=True)
class Certificates:
    """A CA and the server and client certificates it signs, as PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_certificates(folder: Path, name: str = "test") -> Certificates:
    """A self-signed CA, a server certificate for 127.0.0.1 and a client certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} CA"))
        .issuer_name(_name(f"{name} CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {}
    for role, usage in (("server", "SERVER_AUTH"), ("client", "CLIENT_AUTH")):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name} {role}"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage([getattr(x509.oid.ExtendedKeyUsageOID, usage)]), False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        (folder / f"{role}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(folder / f"{role}.key", key)
        paths[role] = (folder / f"{role}.pem", folder / f"{role}.key")
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return Certificates(folder / "ca.pem", *paths["server"], *paths["client"])


@dataclass
class TlsSyslogReceiver:
    """An RFC 5425 receiver on 127.0.0.1: TLS with a client certificate required (IHE
    ATNA's mutual authentication), octet-counted frames, every message kept in order."""

    certificates: Certificates
    port: int = field(default_factory=free_port)
    require_client_cert: bool = True
    messages: list[SyslogMessage] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _listener: socket.socket | None = None
    _connections: list[socket.socket] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)

    def start(self) -> TlsSyslogReceiver:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certificates.server_cert, self.certificates.server_key)
        if self.require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.certificates.ca)
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener, context), daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Close the listener and every connection, as a restarting receiver would."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        for thread in self._threads:
            thread.join(5)
        self._threads = []

    def __enter__(self) -> TlsSyslogReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 10) -> list[SyslogMessage]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def _accept(self, listener: socket.socket, context: ssl.SSLContext) -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            try:
                connection = context.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                self.errors.append(f"handshake: {exc}")
                raw.close()
                continue
            with self._lock:
                self._connections.append(connection)
            thread = threading.Thread(target=self._read, args=(connection,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read(self, connection: socket.socket) -> None:
        """RFC 5425 4.3: SYSLOG-FRAME = MSG-LEN SP SYSLOG-MSG, MSG-LEN = NONZERO-DIGIT *DIGIT."""
        buffer = b""
        while True:
            while b" " not in buffer[:10]:
                if len(buffer) >= 10:
                    self.errors.append(f"bad frame: {buffer[:20]!r}")
                    return
                chunk = self._recv(connection)
                if not chunk:
                    return
                buffer += chunk
            length_text, buffer = buffer.split(b" ", 1)
            if not re.fullmatch(rb"[1-9]\d*", length_text):
                self.errors.append(f"bad MSG-LEN {length_text!r}")
                return
            length = int(length_text)
            while len(buffer) < length:
                chunk = self._recv(connection)
                if not chunk:
                    self.errors.append("connection closed inside a frame")
                    return
                buffer += chunk
            data, buffer = buffer[:length], buffer[length:]
            try:
                message = SyslogMessage.parse(data)
            except ValueError as exc:
                self.errors.append(str(exc))
                continue
            with self._changed:
                self.messages.append(message)
                self._changed.notify_all()

    @staticmethod
    def _recv(connection: socket.socket) -> bytes:
        try:
            return connection.recv(65536)
        except (OSError, ssl.SSLError):
            return b""


@dataclass
class UdpSyslogReceiver:
    """An RFC 5426 receiver on 127.0.0.1: one message per datagram."""

    port: int = 0
    messages: list[SyslogMessage] = field(default_factory=list)
    _sock: socket.socket | None = None

    def __enter__(self) -> UdpSyslogReceiver:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.settimeout(5)
        self.port = self._sock.getsockname()[1]
        return self

    def __exit__(self, *_: object) -> None:
        if self._sock is not None:
            self._sock.close()

    def receive(self) -> SyslogMessage:
        assert self._sock is not None
        data, _ = self._sock.recvfrom(65535)
        message = SyslogMessage.parse(data)
        self.messages.append(message)
        return message
