"""Process-wide settings and corrections of pynetdicom for the DICOM listener's process,
applied once at its start-up (``apply``). Each names the upstream behaviour it changes:

1. pynetdicom decodes every received data set into memory and encodes every sent one:
   ``_config.STORE_RECV_CHUNKED_DATASET`` makes it write received C-STORE data straight to
   a file, ``STORE_SEND_CHUNKED_DATASET`` send files without decoding them.
2. Those received files go to ``tempfile``'s directory: it is made the archive's staging
   area, so storing a received instance is a rename, never a copy.
3. pynetdicom's retrieve services (C-MOVE, C-GET) accept only Dataset objects from the
   handler, while Association.send_c_store streams a file given its path: send_c_store is
   wrapped to take a dimse.sending.StoredFile and send what the peer accepted.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from dimse.sending import StoredFile, accepted_by

_applied = False


def apply(staging_area: Path) -> None:
    """Apply every setting and correction, once per process."""
    global _applied
    if _applied:
        return
    from pynetdicom import _config
    from pynetdicom.association import Association

    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.STORE_SEND_CHUNKED_DATASET = True
    tempfile.tempdir = str(staging_area)
    original = Association.send_c_store

    def send_c_store(self: Any, dataset: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(dataset, StoredFile):
            return original(self, dataset, *args, **kwargs)
        with ExitStack() as cleanup:
            sendable = dataset.sendable(accepted_by(self), cleanup)
            return original(self, sendable, *args, **kwargs)

    # mypy refuses assigning to a method; the wrapper has the method's own signature.
    Association.send_c_store = send_c_store  # type: ignore[method-assign]
    _applied = True
