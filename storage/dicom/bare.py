"""A DICOM data set stored without File Meta Information (no preamble, no group 0002), as
older systems and some test corpora write them: the File Meta a Part-10 file of it needs.

PS3.10 §7.1 requires File Meta on media; the data set itself tells its encoding only by its
first bytes (implicit or explicit VR, little endian). A data set whose pixel data is
encapsulated cannot say which compression it is in, so it is not made a Part-10 file here.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from storage.dicom.part10 import PREAMBLE

_UNDEFINED = 0xFFFFFFFF


def part10_header(path: Path) -> bytes | None:
    """Preamble, 'DICM' and File Meta for the bare data set at *path*, to be written before
    its bytes unchanged; None when the file is not such a data set (no SOP Class and
    Instance UIDs, a Part-10 file already, not DICOM, or encapsulated pixel data)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(path, force=True, defer_size=256)
    except Exception:  # whatever a file that is no DICOM makes pydicom raise
        return None
    if getattr(dataset, "file_meta", None) and "TransferSyntaxUID" in dataset.file_meta:
        return None  # it has File Meta: a Part-10 file (with or without its preamble)
    sop_class, instance = dataset.get("SOPClassUID"), dataset.get("SOPInstanceUID")
    if not sop_class or not instance or dataset.is_little_endian is False:
        return None
    pixels = dataset.get_item(0x7FE00010) if 0x7FE00010 in dataset else None
    if pixels is not None and getattr(pixels, "length", 0) == _UNDEFINED:
        return None  # encapsulated: its transfer syntax cannot be known
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if dataset.is_implicit_VR else ExplicitVRLittleEndian
    )
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out = io.BytesIO()
    write_file_meta_info(out, meta, enforce_standard=True)  # type: ignore[arg-type]
    return PREAMBLE + out.getvalue()
