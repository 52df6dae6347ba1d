"""Zeiss CZI through wsidicomizer's reader, tolerant of files without acquisition metadata."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any

from wsidicomizer.sources.czi import czi_source
from wsidicomizer.sources.czi.czi_metadata import CziMetadata
from wsidicomizer.sources.czi.czi_source import CziSource


class TolerantCziMetadata(CziMetadata):
    """CZI metadata whose optional fields may be absent (microscope CZIs often lack the
    acquisition time, the microscope reference or the objective): absent means unknown."""

    @property
    def aquisition_datetime(self) -> datetime | None:
        try:
            found: datetime | None = super().aquisition_datetime
            return found
        except (ValueError, AttributeError, TypeError):
            return None

    @property
    def scanner_model(self) -> str | None:
        try:
            model: str | None = super().scanner_model
            return model
        except (ValueError, AttributeError, TypeError):
            return None

    @property
    def magnification(self) -> float | None:
        try:
            magnification: float | None = super().magnification
            return magnification
        except (ValueError, AttributeError, TypeError):
            return None

    @property
    def scanner_software_versions(self) -> list[str] | None:
        try:
            versions: list[str] | None = super().scanner_software_versions
            return versions
        except (ValueError, AttributeError, TypeError):
            return None

    @cached_property
    def channel_mapping(self) -> list[str]:
        """Channel names from Fluor, else Name, else the channel's position."""
        try:
            channels = self.get_nested_element(
                ["Metadata", "Information", "Image", "Dimensions", "Channels"]
            )
        except ValueError:
            return ["0"]
        names = []
        for number, channel in enumerate(channels):
            name = None
            for tag in ("Fluor", "Name"):
                try:
                    name = self.get_value_from_element(channel, tag, str)
                    break
                except ValueError:
                    name = channel.get(tag)
                    if name:
                        break
            names.append(name or str(number))
        return names or ["0"]


class ZeissSource(CziSource):
    """CziSource with TolerantCziMetadata."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        original = czi_source.CziMetadata
        czi_source.CziMetadata = TolerantCziMetadata
        try:
            super().__init__(*args, **kwargs)
        finally:
            czi_source.CziMetadata = original
        # czifile returns a tuple for single-block files, wsidicomizer expects a list.
        directory = self._czi.filtered_subblock_directory
        if not isinstance(directory, list):
            self._czi.filtered_subblock_directory = list(directory)
