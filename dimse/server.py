"""The DICOM listener: an application entity with the archive's services bound to it."""

from __future__ import annotations

import logging
import ssl
from functools import partial
from typing import Protocol

from pydicom.uid import UID
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.events import EventHandlerType
from pynetdicom.presentation import AllStoragePresentationContexts

from dimse import metered, patches
from dimse.admission import Admission
from dimse.handlers import (
    STORAGE_COMMITMENT,
    Services,
    handle_commitment,
    handle_echo,
    handle_find,
    handle_get,
    handle_move,
    handle_store,
    refusal,
)
from dimse.identifiers import (
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_GET,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
)
from dimse.peers import network_of, parse_peers
from dimse.transport import ListenerServer
from storage import Archive

log = logging.getLogger(__name__)
WSI_STORAGE = UID("1.2.840.10008.5.1.4.1.1.77.1.6")  # PS3.4 Table B.5-1
# Verification (PS3.4 A.4) and the Query/Retrieve information models.
SERVICE_CLASSES = [
    UID("1.2.840.10008.1.1"),
    PATIENT_ROOT_FIND,
    STUDY_ROOT_FIND,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_MOVE,
    PATIENT_ROOT_GET,
    STUDY_ROOT_GET,
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
    def dimse_peers(self) -> str: ...

    @property
    def dimse_allow_any_calling_ae(self) -> bool: ...

    @property
    def dimse_allowed_hosts(self) -> str: ...

    @property
    def dimse_max_pdu_length(self) -> int: ...

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

    @property
    def tls_require_client_certificate(self) -> bool: ...


def _listed(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def storage_classes() -> list[UID]:
    """Every storage SOP class the listener (and a C-MOVE retrieve's storage SCP) accepts:
    those pynetdicom knows, and VL Whole Slide Microscopy Image Storage."""
    found = {UID(cx.abstract_syntax) for cx in AllStoragePresentationContexts if cx.abstract_syntax}
    return sorted(found | {WSI_STORAGE})


def build_ae(config: DimseConfig) -> AE:
    """An AE supporting every storage SOP class in every transfer syntax, query/retrieve in
    both information models, verification and storage commitment."""
    ae = AE(ae_title=config.ae_title)
    ae.maximum_associations = config.dimse_max_associations
    # Our Maximum Length (PS3.8 D.1): bounds every PDU a peer sends (dimse.patches).
    ae.maximum_pdu_size = config.dimse_max_pdu_length
    for sop_class in storage_classes():
        # scu_role/scp_role: C-GET peers ask us to send C-STORE back over their association.
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
    for sop_class in (*SERVICE_CLASSES, UID(STORAGE_COMMITMENT)):
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
    return ae


def admission_of(config: DimseConfig) -> Admission:
    """The trust policy of the settings (dimse_peers, dimse_allow_any_calling_ae,
    dimse_allowed_hosts); raises PeerError for one that cannot be understood."""
    return Admission(
        config.ae_title.strip(),
        parse_peers(config.dimse_peers),
        config.dimse_allow_any_calling_ae,
        [network_of(host) for host in _listed(config.dimse_allowed_hosts)],
    )


def handlers(services: Services) -> list[EventHandlerType]:
    return [
        (evt.EVT_REQUESTED, services.admission.on_requested),
        (evt.EVT_C_ECHO, partial(handle_echo, services)),
        (evt.EVT_C_STORE, partial(handle_store, services)),
        (evt.EVT_C_FIND, partial(handle_find, services)),
        (evt.EVT_C_MOVE, partial(handle_move, services)),
        (evt.EVT_C_GET, partial(handle_get, services)),
        (evt.EVT_N_ACTION, partial(handle_commitment, services)),
        *metered.handlers(),
    ]


def tls_context(
    certificate: str, key: str, ca: str, require_client_certificate: bool = True
) -> ssl.SSLContext | None:
    """PS3.15 Annex B.1 (TLS 1.2 or later, BCP 195): a server context; with *ca*, peers'
    certificates are checked against it (and required unless told otherwise)."""
    if not certificate:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, key or None)
    if ca:
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL
    return context


def run(config: DimseConfig, archive: Archive) -> None:
    """Serve DIMSE over *archive* until interrupted (in a process of its own)."""
    admission = admission_of(config)
    if config.dimse_allow_any_calling_ae:
        log.warning(
            "dimse_allow_any_calling_ae is set: ANY calling AE title not in dimse_peers may "
            "store, find and retrieve EVERY study"
        )
    services = Services(
        archive, config.ae_title, admission, parse_destinations(config.dimse_destinations)
    )
    patches.apply(archive.staging_area(), partial(refusal, services))
    ae = build_ae(config)
    log.info("DICOM listener %s on %s:%d", config.ae_title, config.host, config.dimse_port)
    context = tls_context(
        config.tls_certificate,
        config.tls_key,
        config.tls_ca,
        config.tls_require_client_certificate,
    )
    server = ae.make_server(
        (config.host, config.dimse_port),
        evt_handlers=handlers(services),
        ssl_context=context,
        server_class=ListenerServer,
        admission=admission,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()
