"""De-identification (PS3.15 Annex E): the Basic Application Level Confidentiality Profile and
the options this archive offers, applied to one instance's header while its pixel data is
copied byte for byte. Pure pydicom: no index, no blob store, no web."""

from __future__ import annotations

from storage.deid.part10 import PixelCopy, Unsupported, read_header, write_deidentified
from storage.deid.table import Column, Options, action_for
from storage.deid.transform import Deidentifier, Pseudonyms, left_out

__all__ = [
    "Column",
    "Deidentifier",
    "Options",
    "PixelCopy",
    "Pseudonyms",
    "Unsupported",
    "action_for",
    "left_out",
    "read_header",
    "write_deidentified",
]
