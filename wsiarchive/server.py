"""Running the HTTP server: granian's multi-threaded WSGI workers in front of the Flask app."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from granian import Granian
from granian.constants import HTTPModes, Interfaces, SSLProtocols
from granian.http import HTTP1Settings
from granian.log import LogLevels

from dicomweb.app import cors_policy
from storage import metrics, open_archive
from storage.errors import OutOfResources
from wsiarchive import run
from wsiarchive.settings import Settings, configure_logging, to_environ

log = logging.getLogger(__name__)


def prepare(settings: Settings) -> None:
    """Create or migrate the index and undo writes a crash interrupted, before workers start.

    On a full disk the recovery may not be able to write: the server starts all the same and
    serves reads (writes are refused with 507 / A700 until space returns; the claims left
    open are released by the next start or by `wsiarchive verify --repair`)."""
    from wsiarchive.forwarding import forwarder
    from wsiarchive.forwarding.config import parse_destinations, parse_rules
    from wsiarchive.webhooks import parse_urls, register

    archive = open_archive(settings)
    try:
        archive.recover()
        register(archive, parse_urls(settings.webhook_urls))
        rules = parse_rules(
            settings.forward_rules, parse_destinations(settings.forward_destinations)
        )
        forwarder.register(archive, rules)
    except OutOfResources as exc:
        log.warning(
            "start-up recovery could not finish, the disk is full (%s); serving reads, "
            "refusing writes until space returns",
            exc.reason,
        )
    finally:
        archive.close()


def _dimse(settings: Settings) -> None:
    """The DICOM listener's process."""
    from dimse.server import run as listen

    configure_logging(settings)
    metrics.configure(settings.metrics)
    listen(settings, open_archive(settings))


def _audit_export(settings: Settings) -> None:
    """The audit exporter's process: the audit trail sent as DICOM Audit Messages."""
    import threading

    from wsiarchive.audit.export import exporter

    configure_logging(settings)
    archive = open_archive(settings)
    exporter(settings, archive.unexported_audit, archive.mark_audit_exported).run(threading.Event())


def _tiers(settings: Settings) -> None:
    """The storage tiers' process: completed recalls back to the first tier, the rules."""
    import threading

    from wsiarchive.tiering import run_loop

    configure_logging(settings)
    run_loop(settings, threading.Event())


def _webhooks(settings: Settings) -> None:
    """The webhook deliverer's process: the change feed POSTed to webhook_urls."""
    import threading

    from wsiarchive.webhooks import Deliverer, parse_urls

    configure_logging(settings)
    Deliverer(
        open_archive(settings),
        parse_urls(settings.webhook_urls),
        settings.webhook_secret,
        settings.webhook_poll_seconds,
        settings.webhook_max_backoff_seconds,
    ).run(threading.Event())


def _forward(settings: Settings) -> None:
    """The forwarder's process: new instances sent to forward_destinations."""
    import threading

    from wsiarchive.forwarding.commands import forwarder_of

    configure_logging(settings)
    forwarder_of(settings, open_archive(settings)).run(threading.Event())


def serve(settings: Settings) -> None:
    """Serve DICOMweb and the DICOM listener until interrupted."""
    configure_logging(settings)
    if not settings.web and not settings.dimse:
        raise ValueError("both web and dimse are off: nothing to serve")
    metrics.configure(settings.metrics)
    if settings.metrics and settings.web and not metrics.shared():
        # Each worker would count on its own, and /metrics show one of them at random.
        raise RuntimeError(
            "serve must run inside wsiarchive.run.run_directory (prometheus-client was "
            "loaded before PROMETHEUS_MULTIPROC_DIR was set)"
        )
    if settings.dimse:
        from dimse.server import admission_of

        admission_of(settings)  # a dimse_peers entry it cannot understand stops serve here
    if settings.web:
        check_web(settings)
    from wsiarchive.webhooks import parse_urls

    parse_urls(settings.webhook_urls)  # a URL it cannot use stops serve here
    from wsiarchive.forwarding.config import parse_destinations, parse_rules

    destinations = parse_destinations(settings.forward_destinations)  # as must a bad one here
    parse_rules(settings.forward_rules, destinations)
    prepare(settings)
    from wsiarchive import demo

    loading = demo.start(settings)  # an empty archive gets the demo study, in the background
    if not settings.web:
        _dimse(settings)
        return
    helpers: list[multiprocessing.process.BaseProcess] = []
    if settings.audit_syslog_host:
        helpers.append(
            multiprocessing.get_context("spawn").Process(
                target=_audit_export, args=(settings,), name="wsiarchive-audit", daemon=True
            )
        )
    if settings.storage_tiers.strip() not in ("", "[]"):
        helpers.append(
            multiprocessing.get_context("spawn").Process(
                target=_tiers, args=(settings,), name="wsiarchive-tiers", daemon=True
            )
        )
    if settings.webhook_urls:
        helpers.append(
            multiprocessing.get_context("spawn").Process(
                target=_webhooks, args=(settings,), name="wsiarchive-webhooks", daemon=True
            )
        )
    if destinations:
        helpers.append(
            multiprocessing.get_context("spawn").Process(
                target=_forward, args=(settings,), name="wsiarchive-forward", daemon=True
            )
        )
    if settings.dimse:
        # A process of its own: pynetdicom's threads never compete with the HTTP workers' GIL.
        helpers.append(
            multiprocessing.get_context("spawn").Process(
                target=_dimse, args=(settings,), name="wsiarchive-dimse", daemon=True
            )
        )
    for helper in helpers:
        helper.start()
    if loading is not None:
        helpers.append(loading)  # started already; stopped with the others
    try:
        _web(settings)
    finally:
        for helper in helpers:
            helper.terminate()
            helper.join(10)


def check_web(settings: Settings) -> None:
    """Refuse, before any worker starts, web settings that cannot work."""
    cors_policy(settings)
    if bool(settings.https_certificate) != bool(settings.https_key):
        raise ValueError("HTTPS needs both https_certificate and https_key")
    for name in ("https_certificate", "https_key"):
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            raise ValueError(f"{name}: no file at {path}")


def tls_options(settings: Settings) -> dict[str, Any]:
    """granian's TLS arguments: none for plain HTTP."""
    if not settings.https_certificate:
        return {}
    return {
        "ssl_cert": Path(settings.https_certificate),
        "ssl_key": Path(settings.https_key),
        "ssl_key_password": settings.https_key_password or None,
        "ssl_protocol_min": SSLProtocols(settings.https_min_tls.value),
    }


def _web(settings: Settings) -> None:
    # Workers are separate processes: they read the resolved settings from the environment.
    os.environ.update(to_environ(settings))
    workers = settings.workers or os.cpu_count() or 1
    tls = tls_options(settings)
    log.info(
        "serving DICOMweb at %s://%s:%d/dicomweb (data in %s, %d workers x %d threads)",
        "https" if tls else "http",
        settings.host,
        settings.port,
        settings.blobs,
        workers,
        settings.threads,
    )
    server = Granian(
        "wsiarchive.wsgi:create_application",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=settings.threads,
        factory=True,
        log_level=LogLevels(settings.log_level),
        respawn_failed_workers=True,
        http=HTTPModes(settings.http_version.value),
        # Only the request head; granian has no timeout for bodies (dicomweb.http.bodies).
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.header_timeout * 1000)),
        **tls,
    )
    if settings.drain_seconds > 0:
        drain = settings.drain_seconds
        # After granian's own handlers are set (its start-up hooks run then), before the
        # workers start.
        server.on_startup(lambda: _drain_on_sigterm(drain, server.signal_handler_interrupt))
    server.serve()


def _drain_on_sigterm(seconds: float, stop: Callable[..., Any]) -> None:
    """A SIGTERM to the main process first marks the run draining (every worker's /readyz
    answers 503, so load balancers stop sending), keeps serving for *seconds*, then stops
    as granian does. A second SIGTERM, or SIGINT, stops at once."""

    def _sigterm(_number: int, _frame: object) -> None:
        if run.draining():
            stop()
            return
        run.start_draining()
        log.warning("SIGTERM: draining for %g s (readiness 503), then stopping", seconds)
        timer = threading.Timer(seconds, stop)
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, _sigterm)
