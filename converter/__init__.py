"""Vendor slide files to DICOM VL Whole Slide Microscopy Image instances."""

from converter.convert import ConversionOptions, convert, named_as_slide, recognises
from converter.errors import ConversionError
from converter.metadata import SlideInfo

__all__ = [
    "ConversionError",
    "ConversionOptions",
    "SlideInfo",
    "convert",
    "named_as_slide",
    "recognises",
]
