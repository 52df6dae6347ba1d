"""The DICOM listener: an application entity with the archive's services bound to it."""

from __future__ import annotations

import logging
import ssl
import tempfile
from functools import partial

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, _config, evt
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dimse.handlers import (
    STORAGE_COMMITMENT,
    Services,
    handle_commitment,
    handle_echo,
    handle_find,
    handle_get,
    handle_move,
    handle_store,
    install_file_sending,
)
from storage import Archive

log = logging.getLogger(__name__)
WSI_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.6"


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


def build_ae(archive: Archive, ae_title: str, allowed_aets: list[str], max_associations: int) -> AE:
    """An AE supporting every storage SOP class in every transfer syntax, query/retrieve in
    both information models, verification and storage commitment."""
    # Received data sets go straight to a file in the staging area (no copy to store them),
    # and instances are sent from their files, never decoded.
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.STORE_SEND_CHUNKED_DATASET = True
    tempfile.tempdir = str(archive.blobs.staging)  # type: ignore[attr-defined]
    install_file_sending()
    ae = AE(ae_title=ae_title)
    ae.maximum_associations = max_associations
    ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs for gigabyte slides
    if allowed_aets:
        ae.require_calling_aet = allowed_aets
    storage_classes = {cx.abstract_syntax for cx in AllStoragePresentationContexts}
    storage_classes.add(WSI_STORAGE)
    for sop_class in sorted(storage_classes):
        # scu_role/scp_role: C-GET peers ask us to send C-STORE back over their association.
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
    for sop_class in (
        Verification,
        PatientRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelFind,
        PatientRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelMove,
        PatientRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelGet,
        STORAGE_COMMITMENT,
    ):
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
    return ae


def handlers(services: Services, allowed_hosts: list[str]) -> list:
    def check_host(event) -> None:  # type: ignore[no-untyped-def]
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


def run(settings) -> None:  # type: ignore[no-untyped-def]
    """Serve DIMSE until interrupted (the process of `wsiarchive serve` that does so)."""
    from storage import open_archive

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    archive = open_archive(
        settings.database, settings.blobs, settings.duplicate_policy, settings.fsync
    )
    aets = [a.strip() for a in settings.dimse_allowed_aets.split(",") if a.strip()]
    hosts = [h.strip() for h in settings.dimse_allowed_hosts.split(",") if h.strip()]
    services = Services(archive, settings.ae_title, parse_destinations(settings.dimse_destinations))
    ae = build_ae(archive, settings.ae_title, aets, settings.dimse_max_associations)
    log.info("DICOM listener %s on %s:%d", settings.ae_title, settings.host, settings.dimse_port)
    ae.start_server(
        (settings.host, settings.dimse_port),
        block=True,
        evt_handlers=handlers(services, hosts),
        ssl_context=tls_context(settings.tls_certificate, settings.tls_key, settings.tls_ca),
    )
