"""Which Host header values may name the server in the URLs of a response (RFC 9110 §7.2):
the Host is the client's say, so only listed ones are echoed, else the listening address."""

from __future__ import annotations

from dataclasses import dataclass

LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
# The ports a URL may leave out (RFC 9110 §4.2.1, §4.2.2).
DEFAULT_PORTS = {"http": 80, "https": 443}


def authority(host: str, port: int) -> str:
    """host:port as a URL writes it: IPv6 addresses in brackets."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


@dataclass(frozen=True)
class TrustedHosts:
    """The Host values the operator trusts, and the authority used for any other."""

    allowed: frozenset[str]
    fallback: str

    @classmethod
    def of(cls, listed: str, host: str, port: int) -> TrustedHosts:
        """*listed* (comma-separated), or by default the listening *host*:*port* and the
        loopback names with that port (and without it when the port is a default one)."""
        fallback = authority(host, port)
        names = [name.strip().lower() for name in listed.split(",") if name.strip()]
        if not names:
            for name in (host, *LOOPBACK):
                names.append(authority(name, port).lower())
                if port in DEFAULT_PORTS.values():
                    names.append(authority(name, port).rsplit(":", 1)[0].lower())
        return cls(frozenset(names), fallback)

    def authority_for(self, host_header: str) -> str:
        """The request's Host when it is trusted, else the listening host:port."""
        host = host_header.strip().lower()
        return host if host in self.allowed else self.fallback
