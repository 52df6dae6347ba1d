"""The route table: every resource and method of the service, once. Flask's URL rules and
the Retrieve Capabilities description are both made from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from flask import Response

from dicomweb.transactions import capabilities as described
from dicomweb.transactions import (
    changefeed,
    delete,
    frames,
    qido,
    rendered,
    stow,
    update,
    wado,
)
from dicomweb.transactions.capabilities import Description
from storage.dicom.levels import Level

View = Callable[..., Response]  # (service, **path variables) -> response

S = "/studies/<study>"
SE = S + "/series/<series>"
I = SE + "/instances/<instance>"  # noqa: E741
F = I + "/frames/<frames>"


@dataclass(frozen=True)
class Route:
    """One method of one resource: Flask rule below the service root, HTTP method, the
    transaction's name (the WADL method id, PS3.18 Annex H), handler and description."""

    rule: str
    method: str
    id: str  # noqa: A003
    view: View
    description: Description


def _search(level: Level) -> Any:
    return partial(qido.search, level=level)


def _rendered(path: str, name: str) -> list[Route]:
    return [
        Route(f"{path}/rendered", "GET", f"Retrieve{name}Rendered", rendered.rendered,
              described.rendered()),
        Route(f"{path}/thumbnail", "GET", f"Retrieve{name}Thumbnail", rendered.thumbnail,
              described.thumbnail()),
    ]  # fmt: skip


# In the order the capabilities list them.
ROUTES: list[Route] = [
    Route("/studies", "GET", "SearchForStudies", _search(Level.STUDY),
          described.search(Level.STUDY)),
    Route("/studies", "POST", "StoreInstances", stow.store, described.store()),
    # Attribute correction (Azure's DICOM service API v2 bulk update): conformance.md §15.
    Route("/studies/$bulkUpdate", "POST", "UpdateStudies", update.bulk_update,
          described.update()),
    Route(S, "GET", "RetrieveStudy", wado.retrieve_instances, described.retrieve()),
    Route(S, "POST", "StoreStudyInstances", stow.store, described.store()),
    Route(S, "DELETE", "DeleteStudy", delete.delete, described.delete()),
    Route(f"{S}/metadata", "GET", "RetrieveStudyMetadata", wado.retrieve_metadata,
          described.metadata()),
    *_rendered(S, "Study"),
    Route(f"{S}/series", "GET", "SearchForStudySeries", _search(Level.SERIES),
          described.search(Level.SERIES)),
    Route(SE, "GET", "RetrieveSeries", wado.retrieve_instances, described.retrieve()),
    Route(SE, "DELETE", "DeleteSeries", delete.delete, described.delete()),
    Route(f"{SE}/metadata", "GET", "RetrieveSeriesMetadata", wado.retrieve_metadata,
          described.metadata()),
    *_rendered(SE, "Series"),
    Route(f"{SE}/instances", "GET", "SearchForStudySeriesInstances", _search(Level.INSTANCE),
          described.search(Level.INSTANCE)),
    Route(I, "GET", "RetrieveInstance", wado.retrieve_instances, described.retrieve()),
    Route(I, "DELETE", "DeleteInstance", delete.delete, described.delete()),
    Route(f"{I}/metadata", "GET", "RetrieveInstanceMetadata", wado.retrieve_metadata,
          described.metadata()),
    Route(F, "GET", "RetrieveFrames", frames.retrieve_frames, described.pixels()),
    *_rendered(F, "Frames"),
    *_rendered(I, "Instance"),
    Route(f"{I}/bulkdata/<path:path>", "GET", "RetrieveBulkdata", frames.retrieve_bulkdata,
          described.pixels()),
    Route(f"{S}/instances", "GET", "SearchForStudyInstances", _search(Level.INSTANCE),
          described.search(Level.INSTANCE)),
    Route("/series", "GET", "SearchForSeries", _search(Level.SERIES),
          described.search(Level.SERIES)),
    Route("/instances", "GET", "SearchForInstances", _search(Level.INSTANCE),
          described.search(Level.INSTANCE)),
    # The change feed (Azure's DICOM service API v2): docs/conformance.md §14.
    Route("/changefeed", "GET", "ReadChangeFeed", changefeed.feed, described.change_feed()),
    Route("/changefeed/latest", "GET", "ReadChangeFeedLatest", changefeed.latest,
          described.change_feed_latest()),
]  # fmt: skip
