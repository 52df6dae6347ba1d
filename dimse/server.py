"""The DICOM listener: an application entity with the archive's services bound to it."""

from __future__ import annotations

import logging
import ssl
from functools import partial
from typing import Any, Protocol

from pydicom.uid import UID
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.events import EventHandlerType
from pynetdicom.presentation import AllStoragePresentationContexts

from dimse import patches
from dimse.handlers import (
    STORAGE_COMMITMENT,
    Services,
    handle_commitment,
    handle_echo,
    handle_find,
    handle_get,
    handle_move,
    handle_store,
)
from storage import Archive

log = logging.getLogger(__name__)
WSI_STORAGE = UID("1.2.840.10008.5.1.4.1.1.77.1.6")  # PS3.4 Table B.5-1
# Verification (PS3.4 A.4) and Query/Retrieve (PS3.4 C.6.1.3, C.6.2.3): Patient Root and
# Study Root, each FIND, MOVE and GET. (pynetdicom names them at run time only.)
SERVICE_CLASSES = [
    UID("1.2.840.10008.1.1"),
    UID("1.2.840.10008.5.1.4.1.2.1.1"),
    UID("1.2.840.10008.5.1.4.1.2.2.1"),
    UID("1.2.840.10008.5.1.4.1.2.1.2"),
    UID("1.2.840.10008.5.1.4.1.2.2.2"),
    UID("1.2.840.10008.5.1.4.1.2.1.3"),
    UID("1.2.840.10008.5.1.4.1.2.2.3"),
]


def parse_destinations(text: str) -> dict[str, tuple[str, int]]:
    """``AE=host:port,AE2=host:port`` → {AE: (host, port)}."""
    destinations = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        title, _, address = entry.partition("=")
        host, _, port = address.rpartition(":")
        if not title or not host or not port.isdigit():
            raise ValueError(f"dimse_destinations entry {entry!r} is not AE=host:port")
        destinations[title.strip()] = (host.strip(), int(port))
    return destinations


class DimseConfig(Protocol):
    """The settings of the DICOM listener (declared in wsiarchive's settings)."""

    @property
    def host(self) -> str: ...

    @property
    def dimse_port(self) -> int: ...

    @property
    def ae_title(self) -> str: ...

    @property
    def dimse_allowed_aets(self) -> str: ...

    @property
    def dimse_allowed_hosts(self) -> str: ...

    @property
    def dimse_max_associations(self) -> int: ...

    @property
    def dimse_destinations(self) -> str: ...

    @property
    def tls_certificate(self) -> str: ...

    @property
    def tls_key(self) -> str: ...

    @property
    def tls_ca(self) -> str: ...


def _listed(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_ae(config: DimseConfig) -> AE:
    """An AE supporting every storage SOP class in every transfer syntax, query/retrieve in
    both information models, verification and storage commitment."""
    ae = AE(ae_title=config.ae_title)
    allowed_aets = _listed(config.dimse_allowed_aets)
    ae.maximum_associations = config.dimse_max_associations
    ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs for gigabyte slides
    if allowed_aets:
        ae.require_calling_aet = allowed_aets
    storage_classes = {
        UID(cx.abstract_syntax) for cx in AllStoragePresentationContexts if cx.abstract_syntax
    }
    storage_classes.add(WSI_STORAGE)
    for sop_class in sorted(storage_classes):
        # scu_role/scp_role: C-GET peers ask us to send C-STORE back over their association.
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
    for sop_class in (*SERVICE_CLASSES, UID(STORAGE_COMMITMENT)):
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
    return ae


def handlers(services: Services, allowed_hosts: list[str]) -> list[EventHandlerType]:
    def check_host(event: Any) -> None:
        address = event.address[0]
        if allowed_hosts and address not in allowed_hosts:
            log.warning("association from %s refused: host not allowed", address)
            event.assoc.abort()

    return [
        (evt.EVT_CONN_OPEN, check_host),
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, partial(handle_store, services)),
        (evt.EVT_C_FIND, partial(handle_find, services)),
        (evt.EVT_C_MOVE, partial(handle_move, services)),
        (evt.EVT_C_GET, partial(handle_get, services)),
        (evt.EVT_N_ACTION, partial(handle_commitment, services)),
    ]


def tls_context(certificate: str, key: str, ca: str) -> ssl.SSLContext | None:
    """PS3.15 Annex B (TLS): a server context; with *ca*, peers must present a certificate."""
    if not certificate:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key or None)
    if ca:
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def run(config: DimseConfig, archive: Archive) -> None:
    """Serve DIMSE over *archive* until interrupted (in a process of its own)."""
    patches.apply(archive.staging_area())
    services = Services(archive, config.ae_title, parse_destinations(config.dimse_destinations))
    ae = build_ae(config)
    log.info("DICOM listener %s on %s:%d", config.ae_title, config.host, config.dimse_port)
    ae.start_server(
        (config.host, config.dimse_port),
        block=True,
        evt_handlers=handlers(services, _listed(config.dimse_allowed_hosts)),
        ssl_context=tls_context(config.tls_certificate, config.tls_key, config.tls_ca),
    )
