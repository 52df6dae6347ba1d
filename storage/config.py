"""What the core reads from the configuration (declared, with defaults, in wsiarchive's
settings; any object with these attributes will do)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Protocol


class DuplicatePolicy(StrEnum):
    """What storing an instance whose SOP Instance UID is stored already does."""

    REJECT = "reject"
    OVERWRITE = "overwrite"


class ArchiveConfig(Protocol):
    """The settings of the archive core."""

    @property
    def database(self) -> str:
        """SQLAlchemy URL of the study index."""
        ...

    @property
    def blobs(self) -> Path:
        """Root directory of the filesystem blob store."""
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
