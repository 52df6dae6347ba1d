"""What the core reads from the configuration (declared, with defaults, in wsiarchive's
settings; any object with these attributes will do)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class DuplicatePolicy(StrEnum):
    """What storing an instance whose SOP Instance UID is stored already does."""

    REJECT = "reject"
    OVERWRITE = "overwrite"


@dataclass(frozen=True)
class DatabasePool:
    """The connection pool of one process to a PostgreSQL index (SQLite has none to size).

    A server holds up to ``size + overflow`` connections per process: serve's HTTP workers
    each run ``threads`` requests at once (4 by default), so 5 covers them and the
    background work; see docs/operations.md for the total a cluster needs."""

    size: int = 5  # connections kept open
    overflow: int = 5  # opened beyond size under a burst, closed when returned
    timeout: float = 5.0  # seconds to wait for a free connection (then 503, IndexUnavailable)
    recycle: int = 1800  # seconds after which a connection is replaced (-1: never)
    # psycopg 3 prepares a statement run 5 times on a connection; off for a PgBouncer in
    # transaction mode older than 1.21 (or without max_prepared_statements).
    prepared_statements: bool = True


class ArchiveConfig(Protocol):
    """The settings of the archive core."""

    @property
    def database(self) -> str:
        """SQLAlchemy URL of the study index."""
        ...

    @property
    def database_pool(self) -> DatabasePool:
        """The connection pool of a PostgreSQL index."""
        ...

    @property
    def migrate_on_start(self) -> bool:
        """Upgrade the index schema when opening it (else refuse one that is not current)."""
        ...

    @property
    def blobs(self) -> Path:
        """Root directory of the filesystem blob store."""
        ...

    # -- the object-storage blob store (storage.blobs.objectstore) --------------------------
    @property
    def blob_url(self) -> str:
        """s3:// az:// gs:// URL of the bucket (container) and prefix; "" for the filesystem."""
        ...

    @property
    def blob_options(self) -> str:
        """JSON object of obstore options: the store's config and HTTP client keys."""
        ...

    @property
    def blob_cache_mb(self) -> int:
        """Megabytes of ranged reads of objects each process keeps in memory."""
        ...

    @property
    def blob_coalesce_kb(self) -> int:
        """Ranges read together less than this many KiB apart are fetched by one GET."""
        ...

    @property
    def duplicate_policy(self) -> DuplicatePolicy: ...

    @property
    def fsync(self) -> bool: ...

    @property
    def transcode_cache_mb(self) -> int: ...

    @property
    def thumbnail_size(self) -> int: ...

    @property
    def max_rendered_pixels(self) -> int: ...

    @property
    def access_group_attribute(self) -> str:
        """DICOM keyword whose value names a new study's access group ("" for none)."""
        ...

    @property
    def audit_repeat_seconds(self) -> float:
        """Seconds within which the same access is audited once."""
        ...

    @property
    def token_recheck_seconds(self) -> float:
        """Seconds a verified API token is trusted before the index is asked again."""
        ...

    @property
    def storage_tiers(self) -> str:
        """The storage tiers, JSON text of an array of tables (storage.tiers.config)."""
        ...

    @property
    def tier_rules(self) -> str:
        """The rules moving studies between tiers, JSON text of an array of tables."""
        ...
