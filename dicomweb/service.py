"""What every DICOMweb handler gets injected: the archive, the settings, the public root URL."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import request

from storage import Archive
from storage.retrieve import FrameTableCache

_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
PREFIX = "/dicomweb"


@dataclass
class Service:
    archive: Archive
    base_url: str = ""
    max_request_bytes: int = 64 << 30
    max_results: int = 1000
    frame_tables: FrameTableCache = field(init=False)

    def __post_init__(self) -> None:
        self.frame_tables = FrameTableCache(self.archive.index)

    def root(self) -> str:
        """The public URL of the DICOMweb service root, without a trailing slash."""
        if self.base_url:
            return self.base_url.rstrip("/")
        host = request.host
        if not _HOST.fullmatch(host):
            host = request.environ.get("SERVER_NAME", "localhost")
        return f"{request.scheme}://{host}{PREFIX}"
