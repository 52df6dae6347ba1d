"""The listener's server: refuses a connection from a host it does not admit at once, and
leaves the TLS handshake to the association's own thread."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
from typing import Any

from pynetdicom.transport import AssociationServer

from dimse.admission import Admission

log = logging.getLogger(__name__)

# A-ABORT PDU (PS3.8 §9.3.8, Table 9-26): type 07, length 4, two reserved bytes, source 0
# (DICOM UL service-user), reason 0 (not significant for that source).
A_ABORT = struct.pack(">BBLBBBB", 0x07, 0, 4, 0, 0, 0, 0)
HANDSHAKE_TIMEOUT = 10.0  # seconds a TLS peer has to complete its handshake


class ListenerServer(AssociationServer):
    """pynetdicom's AssociationServer with two corrections:

    - ``verify_request`` (socketserver's hook, called before any thread or association
      exists) refuses a host the admission policy does not admit: an A-ABORT and the
      connection closed at once (pynetdicom has no such check; aborting in EVT_CONN_OPEN left
      the connection waiting for the ACSE timeout).
    - ``get_request`` performed the TLS handshake in the one accepting thread, so that one
      peer that never completes its handshake stopped every other peer from connecting: the
      socket is wrapped without the handshake, which a thread of its own then does, bounded
      by HANDSHAKE_TIMEOUT, before the association starts.
    """

    def __init__(self, *args: Any, admission: Admission, **kwargs: Any) -> None:
        self.admission = admission
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client, address = self.socket.accept()
        if self.ssl_context:
            client = self.ssl_context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
        return client, address

    def process_request(self, request: Any, client_address: Any) -> None:
        if not isinstance(request, ssl.SSLSocket):
            self.finish_request(request, client_address)
            return
        threading.Thread(
            target=self._handshake_then_serve,
            args=(request, client_address),
            name=f"TLSHandshake@{client_address[0]}",
            daemon=True,
        ).start()

    def _handshake_then_serve(self, request: ssl.SSLSocket, client_address: Any) -> None:
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            request.do_handshake()
            request.settimeout(None)
        except OSError as exc:  # ssl.SSLError and timeouts included
            log.warning("TLS handshake with %s failed: %s", client_address[0], exc)
            self.shutdown_request(request)
            return
        self.finish_request(request, client_address)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        host = str(client_address[0])
        if self.admission.admits_host(host):
            return True
        log.warning("connection from %s refused: no peer may connect from there", host)
        if not isinstance(request, ssl.SSLSocket):  # no DICOM PDU before a TLS handshake
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(A_ABORT)
                # Read what already arrived (the A-ASSOCIATE-RQ), so that closing sends a
                # FIN after the A-ABORT rather than a reset that could discard it.
                request.recv(65536)
        return False  # socketserver then shuts the connection down and closes it
