"""The change feed (after Azure's DICOM service, API v2): the ordered events of every instance
created, updated and deleted, read by time window and offset, and the latest one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Response, request

from dicomweb.http.errors import HTTPError
from dicomweb.service import Service
from storage.dicom.document import JsonObject, absolutize
from storage.records import Change, FeedWindow

DEFAULT_LIMIT, MAX_LIMIT = 100, 200  # Azure's v2 default and maximum
MAX_OFFSET = 1 << 62
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def _arguments() -> dict[str, str]:
    """The query parameters by lower-cased name (Azure's are matched case-insensitively)."""
    return {name.lower(): value for name, value in request.args.items()}


def _time(arguments: Mapping[str, str], name: str) -> datetime | None:
    text = arguments.get(name.lower())
    if text is None or text == "":
        return None
    try:
        moment = datetime.fromisoformat(text.replace(" ", "+"))
    except ValueError as exc:
        raise HTTPError(400, f"{name} {text[:64]!r} is not an ISO 8601 date-time") from exc
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment  # without a zone: UTC, as every time of the feed


def _integer(arguments: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = arguments.get(name.lower())
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise HTTPError(400, f"{name} must be an integer from {low} to {high}, not {text[:32]!r}")
    return int(text)


def _include_metadata(arguments: Mapping[str, str]) -> bool:
    text = arguments.get("includemetadata", "true").lower()
    if text not in _TRUE + _FALSE:
        raise HTTPError(400, f"includeMetadata must be true or false, not {text[:32]!r}")
    return text in _TRUE


def entry(change: Change, metadata: JsonObject | None, include: bool) -> dict[str, Any]:
    """One event in Azure's object model (its field names and values)."""
    found: dict[str, Any] = {
        "Sequence": change.sequence,
        "StudyInstanceUid": change.study,
        "SeriesInstanceUid": change.series,
        "SopInstanceUid": change.instance,
        "Action": change.action.value,
        "Timestamp": change.at.isoformat(timespec="microseconds") + "Z",
        "State": change.state.value,
    }
    if include and metadata is not None:
        found["Metadata"] = metadata
    return found


def _entries(service: Service, changes: list[Change], include: bool) -> list[dict[str, Any]]:
    documents = service.archive.change_documents(changes) if include else {}
    root = service.root()
    return [
        entry(
            change,
            absolutize(documents[change.instance], root) if change.instance in documents else None,
            include,
        )
        for change in changes
    ]


def _json(value: object) -> Response:
    return Response(json.dumps(value, separators=(",", ":")), content_type="application/json")


def feed(service: Service) -> Response:
    """GET /changefeed?startTime=&endTime=&offset=&limit=&includeMetadata=: the events at or
    after startTime and before endTime, offset of them skipped, at most limit (1-200)."""
    arguments = _arguments()
    window = FeedWindow(
        _time(arguments, "startTime"),
        _time(arguments, "endTime"),
        _integer(arguments, "offset", 0, 0, MAX_OFFSET),
        _integer(arguments, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
    )
    if window.start is not None and window.end is not None and window.end <= window.start:
        raise HTTPError(400, "endTime must be later than startTime")
    include = _include_metadata(arguments)
    changes = service.archive.change_feed(window, who=service.who())
    return _json(_entries(service, changes, include))


def latest(service: Service) -> Response:
    """GET /changefeed/latest: the last event, or null while the feed is empty."""
    include = _include_metadata(_arguments())
    found = service.archive.latest_change(who=service.who())
    return _json(_entries(service, [found], include)[0] if found is not None else None)
