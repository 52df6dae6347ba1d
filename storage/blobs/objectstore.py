"""Blobs as objects in S3, Azure Blob Storage or Google Cloud Storage (through obstore, the
binding of Rust's object_store), staged on local disk and uploaded when placed."""

from __future__ import annotations

import io
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import ObjectStore, from_url

from storage.blobs.readcache import Range, RangeCache
from storage.blobs.staged import StagedBlob
from storage.blobs.staging import LocalStaging
from storage.errors import BlobMissing, StorageUnavailable

SCHEMES = ("s3", "s3a", "az", "azure", "abfs", "abfss", "gs")
QUARANTINE = ".quarantine"  # a prefix inside the store's own prefix
PART = 8 << 20  # multipart upload part size: the memory an upload holds per part in flight
UPLOADS = 4  # parts uploaded at once
WINDOW = 64 << 20  # the longest single GET of a sequential reader (bounds one request's time)
# obstore's ClientConfig keys: given in blob_options beside the store's own keys.
CLIENT_KEYS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "default_content_type",
        "default_headers",
        "http1_only",
        "http2_keep_alive_interval",
        "http2_keep_alive_timeout",
        "http2_keep_alive_while_idle",
        "http2_only",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "proxy_url",
        "proxy_ca_certificate",
        "proxy_excludes",
        "randomize_addresses",
        "read_timeout",
        "root_certificate",
        "timeout",
        "user_agent",
    }
)
# A store that cannot be reached fails a request within seconds, not after object_store's
# default of ten retries over three minutes (blob_options' retry_config overrides it).
RETRY: dict[str, Any] = {"max_retries": 3, "retry_timeout": timedelta(seconds=15)}
T = TypeVar("T")


def is_object_url(url: str) -> bool:
    """Whether *url* names an object store this module serves."""
    return url.split("://", 1)[0].lower() in SCHEMES if "://" in url else False


def store_options(options: str | Mapping[str, Any]) -> dict[str, Any]:
    """obstore's from_url keywords from blob_options (a JSON object): the store's own keys
    (endpoint, region, account_name, ...) go to ``config``, the HTTP client's to
    ``client_options``; ``retry_config`` (its ``retry_timeout`` in seconds) is passed on."""
    given = json.loads(options) if isinstance(options, str) else dict(options)
    if not isinstance(given, dict):
        raise ValueError("blob_options must be a table (a JSON object)")
    retry = dict(RETRY)
    retry.update(given.pop("retry_config", {}))
    if isinstance(retry.get("retry_timeout"), int | float):
        retry["retry_timeout"] = timedelta(seconds=retry["retry_timeout"])
    client = dict(given.pop("client_options", {}))
    config: dict[str, Any] = {}
    for name, value in given.items():
        (client if name in CLIENT_KEYS else config)[name] = value
    return {"config": config, "client_options": client, "retry_config": retry}


def _call(what: str, key: str, function: Callable[[], T]) -> T:
    """*function*'s result; a missing object is BlobMissing, any other failure of the store
    (unreachable, refused credentials) StorageUnavailable."""
    try:
        return function()
    except (FileNotFoundError, NotFoundError) as exc:
        raise BlobMissing(f"blob {key} is missing from the object store") from exc
    except (BaseError, OSError) as exc:
        first = str(exc).split("\n", 1)[0][:300]
        raise StorageUnavailable(f"the object store failed to {what} {key}: {first}") from exc


class ObjectBlobStore(LocalStaging):
    """Immutable blobs as objects under a URL's bucket (container) and prefix.

    Incoming bytes are staged in a local directory; ``place`` streams the finished file into
    the bucket as a multipart upload and returns once the store has completed it (the object
    is then durable). Ranged reads are coalesced and cached (storage.blobs.readcache).
    """

    def __init__(
        self,
        url: str,
        options: str | Mapping[str, Any],
        staging: Path,
        cache_bytes: int,
        gap: int,
    ) -> None:
        if not is_object_url(url):
            raise ValueError(f"blob_url {url!r} is not an s3://, az:// or gs:// URL")
        # Staged bytes need no fsync: nothing is acknowledged before the upload completes.
        super().__init__(staging, fsync=False)
        self.url = url
        try:
            self.store: ObjectStore = from_url(url, **store_options(options))
        except BaseError as exc:  # an unknown option, credentials that cannot be read
            first = str(exc).split("\n", 1)[0][:300]
            raise ValueError(f"blob_url {url} cannot be opened: {first}") from exc
        self.cache = RangeCache(cache_bytes, gap)

    # -- writing -------------------------------------------------------------------------------
    def place(self, staged: StagedBlob, key: str) -> None:
        """Upload a finished staged blob as object *key* (multipart, part by part from the
        file) and return once the upload is complete; the staged file is then removed."""
        staged.finish()
        _check(key)
        with open(staged.path, "rb") as fp:
            _call(
                "store",
                key,
                lambda: obstore.put(self.store, key, fp, chunk_size=PART, max_concurrency=UPLOADS),
            )
        staged.discard()

    def copy(self, source: str, target: str) -> None:
        """Copy object *source* to *target* within the store (server-side; for moving blobs
        between prefixes or tiers)."""
        _check(target)
        _call("copy", source, lambda: obstore.copy(self.store, source, target))

    def delete(self, key: str) -> None:
        """Remove object *key* if it exists (and its cached ranges)."""
        self.cache.forget(key)
        with suppress(BlobMissing):
            _call("delete", key, lambda: obstore.delete(self.store, key))

    def blob_keys(self) -> Iterator[tuple[str, float]]:
        """Every object's key and last-modified time (the quarantine prefix left out)."""
        batches = _call("list", "/", lambda: obstore.list(self.store))
        for batch in _listing(batches):
            for meta in batch:
                path = meta["path"]
                if path.startswith(QUARANTINE + "/"):
                    continue
                yield path, meta["last_modified"].timestamp()

    def probe(self) -> None:
        """The bucket answers one listing page with the credentials given (reachable,
        allowed), and a file can be made in the local staging area (readiness)."""
        batches = _call("list", "/", lambda: obstore.list(self.store, chunk_size=1))
        _call("list", "/", lambda: next(iter(batches), None))
        self.probe_staging()

    def quarantine(self, key: str) -> str:
        """Copy the object under the quarantine prefix, then delete it; returns the new key."""
        target = f"{QUARANTINE}/{key}"
        _call("quarantine", key, lambda: obstore.copy(self.store, key, target))
        self.delete(key)
        return f"{self.url.rstrip('/')}/{target}"

    # -- reading -------------------------------------------------------------------------------
    def size(self, key: str) -> int:
        return int(_call("read", key, lambda: obstore.head(self.store, key))["size"])

    def open(self, key: str) -> BinaryIO:
        """A buffered, seekable reader of the object, streamed in GETs of at most WINDOW."""
        raw = ObjectReader(self.store, key)
        return cast(BinaryIO, io.BufferedReader(raw, buffer_size=1 << 20))

    def read_ranges(self, key: str, ranges: Iterable[tuple[int, int]]) -> Iterator[bytes]:
        """The bytes of each range: cached ones from memory, the rest in coalesced GETs made
        at once (obstore runs them concurrently)."""
        yield from self.cache.read(key, list(ranges), self._fetch)

    def prefetch(self, key: str, ranges: Sequence[tuple[int, int]]) -> None:
        """Fetch *ranges* into the cache with coalesced GETs made at once, so that the frames
        of one request read afterwards one by one cost no request each (skipped without a
        cache, or when they would fill more than a quarter of it)."""
        lru = self.cache.lru
        if lru is None or lru.max_bytes is None or len(ranges) < 2:
            return
        if sum(length for _, length in ranges) > lru.max_bytes // 4:
            return
        self.cache.read(key, list(ranges), self._fetch)

    def _fetch(self, key: str, spans: Sequence[Range]) -> Sequence[bytes | memoryview]:
        if not spans:
            return []
        starts = [offset for offset, _ in spans]
        lengths = [length for _, length in spans]
        found = _call(
            "read",
            key,
            lambda: obstore.get_ranges(self.store, key, starts=starts, lengths=lengths, coalesce=0),
        )
        return [memoryview(data) for data in found]

    def local_file(self, key: str) -> AbstractContextManager[Path]:
        """The object downloaded (streamed) into a file of the staging area, removed after."""
        return self._downloaded(key)

    @contextmanager
    def _downloaded(self, key: str) -> Iterator[Path]:
        path = self.staging / f"download-{secrets.token_hex(8)}.dcm"
        try:
            with self.open(key) as source, open(path, "wb") as target:
                while chunk := source.read(8 << 20):
                    target.write(chunk)
            yield path
        finally:
            path.unlink(missing_ok=True)


class ObjectReader(io.RawIOBase):
    """A seekable raw reader of one object: sequential reads consume one streamed GET of up
    to WINDOW bytes; a seek elsewhere starts the next GET there."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        super().__init__()
        self._store, self._key = store, key
        self._size = self.size_of()
        self._position = 0
        self._stream: Iterator[bytes] | None = None
        self._stream_at = -1  # the offset the stream's next byte has
        self._left = b""  # bytes of the stream's last chunk not read yet

    def size_of(self) -> int:
        return int(_call("read", self._key, lambda: obstore.head(self._store, self._key))["size"])

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._position >= self._size or not len(view):
            return 0
        if self._stream is None or self._stream_at != self._position:
            self._open_stream()
        if not self._left:
            try:
                assert self._stream is not None
                self._left = _call("read", self._key, lambda: next(self._stream))  # type: ignore[arg-type]
            except StopIteration:
                self._stream = None
                return self.readinto(buffer)
        count = min(len(view), len(self._left))
        view[:count] = self._left[:count]
        self._left = self._left[count:]
        self._position += count
        self._stream_at = self._position
        return count

    def _open_stream(self) -> None:
        end = min(self._size, self._position + WINDOW)
        result = _call(
            "read",
            self._key,
            lambda: obstore.get(self._store, self._key, options={"range": (self._position, end)}),
        )
        self._stream = iter(result.stream(min_chunk_size=1 << 20))
        self._stream_at, self._left = self._position, b""


def _listing(batches: Iterable[Sequence[Any]]) -> Iterator[Sequence[Any]]:
    """The batches of a listing, a failure of the store as StorageUnavailable."""
    iterator = iter(batches)
    while True:
        try:
            batch = _call("list", "/", lambda: next(iterator))
        except StopIteration:
            return
        yield batch


def _check(key: str) -> None:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad blob key {key!r}")
    if parts[0] == QUARANTINE:
        raise ValueError(f"bad blob key {key!r}")
