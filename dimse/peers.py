"""The table of known DICOM peers: who may associate, from where, for which operations and
which access groups (the dimse_peers setting)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from storage.access import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Operation(StrEnum):
    """A DIMSE service a peer may use (the finer set kept beside the Principal's scopes)."""

    ECHO = "echo"  # C-ECHO (PS3.4 A)
    STORE = "store"  # C-STORE (PS3.4 B)
    FIND = "find"  # C-FIND (PS3.4 C.4.1)
    MOVE = "move"  # C-MOVE (PS3.4 C.4.2)
    GET = "get"  # C-GET (PS3.4 C.4.3)
    COMMIT = "commit"  # Storage Commitment N-ACTION (PS3.4 J)


ALL_OPERATIONS = frozenset(Operation)

# The scope of the core (storage.access) each operation needs. Storage commitment belongs to
# storing: it tells the storing peer which of its instances the archive holds.
SCOPE: dict[Operation, Scope | None] = {
    Operation.ECHO: None,
    Operation.STORE: Scope.WRITE,
    Operation.FIND: Scope.READ,
    Operation.MOVE: Scope.READ,
    Operation.GET: Scope.READ,
    Operation.COMMIT: Scope.WRITE,
}

_KEYS = {"ae_title", "host", "operations", "groups"}


class PeerError(ValueError):
    """A dimse_peers entry that cannot be understood."""


def network_of(text: str) -> Network:
    """An address or a network (``10.0.0.5``, ``10.0.0.0/24``, ``::1``)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise PeerError(f"{text!r} is not an IP address or network") from exc


def within(host: str, network: Network) -> bool:
    """True when the address *host* is in *network* (an IPv4-mapped IPv6 address counts)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.version == network.version and address in network


@dataclass(frozen=True)
class Peer:
    """A known peer. ``network`` None: from any address; ``groups`` None: every group."""

    ae_title: str
    network: Network | None = None
    operations: frozenset[Operation] = ALL_OPERATIONS
    groups: frozenset[str] | None = None

    def matches(self, ae_title: str, host: str) -> bool:
        return ae_title == self.ae_title and (self.network is None or within(host, self.network))

    @property
    def scopes(self) -> frozenset[Scope]:
        return frozenset(s for op in self.operations if (s := SCOPE[op]) is not None)


def _words(value: Any, key: str, title: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise PeerError(f"dimse_peers {title!r}: {key} must be a list of strings")
    return value


def peer_of(entry: dict[str, Any]) -> Peer:
    """One ``[[dimse_peers]]`` table as a Peer."""
    title = entry.get("ae_title")
    if not isinstance(title, str) or not 0 < len(title.strip()) <= 16:
        raise PeerError(f"dimse_peers entry {entry!r}: ae_title must be 1 to 16 characters")
    title = title.strip()
    unknown = set(entry) - _KEYS
    if unknown:
        raise PeerError(f"dimse_peers {title!r}: unknown keys {', '.join(sorted(unknown))}")
    host = entry.get("host")
    if host is not None and not isinstance(host, str):
        raise PeerError(f"dimse_peers {title!r}: host must be a string")
    operations = ALL_OPERATIONS
    if "operations" in entry:
        words = _words(entry["operations"], "operations", title)
        known = {op.value for op in Operation}
        wrong = [w for w in words if w not in known]
        if wrong:
            raise PeerError(
                f"dimse_peers {title!r}: unknown operations {', '.join(wrong)} "
                f"(known: {', '.join(sorted(known))})"
            )
        operations = frozenset(Operation(w) for w in words)
    groups = None
    if "groups" in entry:
        groups = frozenset(_words(entry["groups"], "groups", title))
    return Peer(title, network_of(host) if host else None, operations, groups)


def parse_peers(text: str) -> list[Peer]:
    """The dimse_peers setting (JSON text of an array of tables) as Peers."""
    try:
        entries = json.loads(text or "[]")
    except ValueError as exc:
        raise PeerError(f"dimse_peers is not an array of tables: {exc}") from exc
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise PeerError("dimse_peers is not an array of tables")
    return [peer_of(entry) for entry in entries]


def peer_for(peers: Iterable[Peer], ae_title: str, host: str) -> Peer | None:
    """The first peer with that AE title whose network holds *host*."""
    return next((p for p in peers if p.matches(ae_title, host)), None)
