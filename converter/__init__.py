"""Vendor slide files to DICOM VL Whole Slide Microscopy Image instances."""

from pydicom import config as _pydicom_config

# wsidicomizer sets pydicom's validation to RAISE and turns on pydicom's "future behavior"
# (which breaks Dataset.pixel_array in pydicom 3.0) for the whole process on import; import it
# now and put the process-wide modes back (conversions set their own, see convert.py).
_future = _pydicom_config._use_future
_saved = (
    _pydicom_config.settings.reading_validation_mode,
    _pydicom_config.settings.writing_validation_mode,
)
import wsidicomizer.dicomizer_source  # noqa: E402, F401

if not _future:
    _pydicom_config.future_behavior(False)
(
    _pydicom_config.settings.reading_validation_mode,
    _pydicom_config.settings.writing_validation_mode,
) = _saved

from converter.convert import ConversionOptions, convert  # noqa: E402
from converter.errors import ConversionError  # noqa: E402
from converter.metadata import SlideInfo  # noqa: E402

__all__ = ["ConversionError", "ConversionOptions", "SlideInfo", "convert"]
