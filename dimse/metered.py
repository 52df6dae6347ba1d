"""The DICOM listener's metrics: its associations by event, and every operation it answered
by service and final status class (counted from the responses it sends)."""

from __future__ import annotations

from typing import Any

from pynetdicom import evt
from pynetdicom.events import EventHandlerType

from dimse.statuses import status_class
from storage import metrics

_EVENTS = {
    evt.EVT_ESTABLISHED: "accepted",
    evt.EVT_REJECTED: "rejected",
    evt.EVT_RELEASED: "released",
    evt.EVT_ABORTED: "aborted",
}


def _association(name: str) -> Any:
    counter = metrics.child(metrics.DIMSE_ASSOCIATIONS, name)

    def handler(_event: Any) -> None:
        counter.inc()

    return handler


def _sent(event: Any) -> None:
    message = event.message
    kind = type(message).__name__
    if not kind.endswith("_RSP"):
        return  # a request the listener sends (C-STORE of a C-GET, N-EVENT-REPORT)
    status = getattr(message.command_set, "Status", None)
    found = status_class(int(status)) if status is not None else None
    if found is not None:
        metrics.DIMSE_OPERATIONS.labels(kind[: -len("_RSP")], found).inc()


def handlers() -> list[EventHandlerType]:
    """The listener's event handlers that count (none when metrics are off)."""
    if not metrics.enabled():
        return []
    found: list[EventHandlerType] = [(event, _association(name)) for event, name in _EVENTS.items()]
    found.append((evt.EVT_DIMSE_SENT, _sent))
    return found
