"""Who may associate and what they may do: the connection and association checks, and the
Principal of each accepted association (kept for the handlers)."""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pynetdicom import evt

from dimse.peers import ALL_OPERATIONS, Network, Operation, Peer, peer_for, within
from storage.access import Principal, PrincipalKind, Scope

log = logging.getLogger(__name__)


class Rejection(Enum):
    """A-ASSOCIATE-RJ (result, source, reason/diag.) per PS3.8 §9.3.4 Table 9-21: result 1
    rejected-permanent; source 1 DICOM UL service-user."""

    CALLING_AE_NOT_RECOGNISED = (1, 1, 3)
    CALLED_AE_NOT_RECOGNISED = (1, 1, 7)


# The operation of each DIMSE request primitive (pynetdicom.dimse_primitives).
OPERATION_OF = {
    "C_ECHO": Operation.ECHO,
    "C_STORE": Operation.STORE,
    "C_FIND": Operation.FIND,
    "C_MOVE": Operation.MOVE,
    "C_GET": Operation.GET,
    "N_ACTION": Operation.COMMIT,  # the only N-service served: Storage Commitment
}


def operation_of(request: Any) -> Operation | None:
    """The operation a DIMSE request asks for; None for one not governed by dimse_peers."""
    return OPERATION_OF.get(type(request).__name__)


@dataclass(frozen=True)
class Grant:
    """What an accepted association may do: the core's Principal and the DIMSE operations."""

    principal: Principal
    operations: frozenset[Operation]


def _calling(association: Any) -> tuple[str, str, str, int]:
    """Calling AE, called AE, peer address and port of an association being requested."""
    request = association.requestor.primitive
    calling = str(request.calling_ae_title).strip()
    called = str(request.called_ae_title).strip()
    return calling, called, association.requestor.address, association.requestor.port


@dataclass
class Admission:
    """The listener's trust policy (dimse_peers, dimse_allow_any_calling_ae,
    dimse_allowed_hosts) and the grant of each association it accepted."""

    ae_title: str
    peers: list[Peer]
    allow_any_calling_ae: bool = False
    hosts: list[Network] = field(default_factory=list)
    _grants: weakref.WeakKeyDictionary[Any, Grant] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )

    def admits_host(self, host: str) -> bool:
        """Whether a connection from *host* may go on to ask for an association: it is in
        dimse_allowed_hosts (when set), and some peer may come from it (unless any calling
        AE is allowed)."""
        if self.hosts and not any(within(host, network) for network in self.hosts):
            return False
        if self.allow_any_calling_ae:
            return True
        return any(p.network is None or within(host, p.network) for p in self.peers)

    def grant_of(self, association: Any) -> Grant | None:
        """The grant of an association being requested; None when it is refused."""
        calling, called, host, port = _calling(association)
        if called != self.ae_title or not self.admits_host(host):
            return None
        source = f"{calling}@{host}:{port}"
        peer = peer_for(self.peers, calling, host)
        if peer is None:
            if not self.allow_any_calling_ae:
                return None
            # dimse_allow_any_calling_ae: as before the peers table, everything on every study.
            peer = Peer(calling, None, ALL_OPERATIONS, None)
            scopes = frozenset({Scope.READ, Scope.WRITE})
        else:
            scopes = peer.scopes
        principal = Principal(
            calling, PrincipalKind.AE, scopes, peer.groups, None, source, f"AE {calling}"
        )
        return Grant(principal, peer.operations)

    def rejection(self, association: Any) -> Rejection | None:
        """Why an association being requested is rejected, or None."""
        if self.grant_of(association) is not None:
            return None
        _, called, _, _ = _calling(association)
        if called != self.ae_title:
            return Rejection.CALLED_AE_NOT_RECOGNISED
        return Rejection.CALLING_AE_NOT_RECOGNISED

    def on_requested(self, event: Any) -> None:
        """EVT_REQUESTED: reject at once (before negotiation), or keep the grant."""
        association = event.assoc
        grant = self.grant_of(association)
        if grant is not None:
            self._grants[association] = grant
            return
        rejection = self.rejection(association)
        assert rejection is not None
        calling, called, host, port = _calling(association)
        log.warning(
            "association from %s@%s:%d to %s rejected: %s",
            calling,
            host,
            port,
            called,
            rejection.name.lower().replace("_", " "),
        )
        # As pynetdicom rejects in its own negotiation (acse._negotiate_as_acceptor).
        association.acse.send_reject(*rejection.value)
        evt.trigger(association, evt.EVT_REJECTED, {})
        association.kill()

    def grant(self, association: Any) -> Grant | None:
        """The grant kept for an accepted association."""
        return self._grants.get(association)

    def principal_of(self, association: Any) -> Principal | None:
        """The identity an accepted association acts as; None when it has none."""
        grant = self._grants.get(association)
        return grant.principal if grant is not None else None

    def may(self, association: Any, operation: Operation) -> bool:
        grant = self._grants.get(association)
        return grant is not None and operation in grant.operations
