"""Aperio SVS through opentile (tiles copied as they are), also when the file gives no MPP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opentile.formats.svs import svs_metadata
from wsidicomizer.sources import OpenTileSource


class AperioSource(OpenTileSource):
    """OpenTileSource for SVS files. opentile needs the MPP of the ImageDescription; regions
    exported from TCGA slides lack it, so the pixel spacing the user gives (``mpp``) stands in.
    """

    fallback_mpp: float | None = None

    @staticmethod
    def is_supported(path: Path) -> bool:
        return path.suffix.lower() == ".svs" and OpenTileSource.is_supported(path)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        original = svs_metadata.SvsMetadata.mpp
        fallback = type(self).fallback_mpp

        def mpp(metadata: object) -> float:
            try:
                return float(original.fget(metadata))
            except KeyError:
                if fallback is None:
                    raise ValueError(
                        "the SVS ImageDescription gives no MPP (pixel size); give it with "
                        "--mpp or the metadata key mpp"
                    ) from None
                return fallback

        svs_metadata.SvsMetadata.mpp = property(mpp)
        try:
            super().__init__(*args, **kwargs)
        finally:
            svs_metadata.SvsMetadata.mpp = original
