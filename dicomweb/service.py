"""What every DICOMweb handler gets injected: the archive, the web settings, the public root."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from flask import g, request

from storage import Archive
from storage.access import Principal

_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
PREFIX = "/dicomweb"


class WebConfig(Protocol):
    """The settings of the DICOMweb front door (declared in wsiarchive's settings)."""

    @property
    def base_url(self) -> str: ...

    @property
    def max_request_bytes(self) -> int: ...

    @property
    def max_search_results(self) -> int: ...

    @property
    def cache_max_age(self) -> int: ...


@dataclass(frozen=True)
class Service:
    """The archive and the settings, as the handlers use them."""

    archive: Archive
    config: WebConfig

    def who(self) -> Principal:
        """The principal of the current request (dicomweb.identity authenticated it)."""
        principal: Principal = g.principal
        return principal

    def root(self) -> str:
        """The public URL of the DICOMweb service root, without a trailing slash."""
        if self.config.base_url:
            return self.config.base_url.rstrip("/")
        host = request.host
        if not _HOST.fullmatch(host):
            host = request.environ.get("SERVER_NAME", "localhost")
        return f"{request.scheme}://{host}{PREFIX}"
