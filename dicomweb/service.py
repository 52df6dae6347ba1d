"""What every DICOMweb handler gets injected: the archive, the settings, the public root URL."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import request

from storage import Archive
from storage.index import StoredRecord
from storage.pixels import ImageInfo
from storage.renderer import Renderer
from storage.retrieve import FrameReader, FrameTableCache, InstanceCache
from storage.transcoding import Transcoder

_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
PREFIX = "/dicomweb"


@dataclass
class Service:
    archive: Archive
    base_url: str = ""
    max_request_bytes: int = 64 << 30
    max_results: int = 1000
    cache_max_age: int = 86400
    transcode_cache_bytes: int = 256 << 20
    thumbnail_size: int = 256
    max_rendered_pixels: int = 50_000_000
    frame_tables: FrameTableCache = field(init=False)
    instances: InstanceCache = field(init=False)
    transcoder: Transcoder = field(init=False)
    renderer: Renderer = field(init=False)

    def __post_init__(self) -> None:
        self.frame_tables = FrameTableCache(self.archive.index)
        self.instances = InstanceCache(self.archive.records)
        self.transcoder = Transcoder(self.transcode_cache_bytes)
        self.renderer = Renderer(
            self.archive, self.frame_tables, self.max_rendered_pixels, self.thumbnail_size
        )

    def image_info(self, record: StoredRecord) -> ImageInfo | None:
        """The pixel description of an instance, from its metadata document (cached)."""
        return self.renderer.info(record)

    def frame_reader(self, record: StoredRecord) -> FrameReader:
        return FrameReader(self.archive.blobs, record, self.frame_tables.get(record))

    def instance(self, study: str, series: str, instance: str, fresh: bool = False) -> StoredRecord:
        """One stored instance, from the cache unless *fresh* (see InstanceCache)."""
        if fresh:
            return self.instances.fresh(study, series, instance)
        return self.instances.get(study, series, instance)

    def root(self) -> str:
        """The public URL of the DICOMweb service root, without a trailing slash."""
        if self.base_url:
            return self.base_url.rstrip("/")
        host = request.host
        if not _HOST.fullmatch(host):
            host = request.environ.get("SERVER_NAME", "localhost")
        return f"{request.scheme}://{host}{PREFIX}"
