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
4. pynetdicom writes a received data set to its file inside the DIMSE reactor thread, where
   an OSError aborts the association: on a full disk the peer would get an A-ABORT instead
   of the C-STORE status PS3.4 B.2.3 prescribes (A700 Refused: Out of Resources). The file
   is made a ``ReceivedFile``, which stops writing when the disk is full and remembers it
   (``out_of_space``), so the handler answers A700.
"""

from __future__ import annotations

import errno
import os
import secrets
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from dimse.sending import StoredFile, accepted_by

_applied = False
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_OUT_OF_SPACE: set[str] = set()  # received files that could not be written completely


def out_of_space(path: Path) -> bool:
    """True (once) when the disk filled up while *path* was being received."""
    try:
        _OUT_OF_SPACE.remove(str(path))
    except KeyError:
        return False
    return True


class ReceivedFile:
    """pynetdicom's temporary file of a received C-STORE data set (correction 4)."""

    def __init__(self, **kwargs: Any) -> None:
        self._file: Any = None
        try:
            self._file = tempfile.NamedTemporaryFile(**kwargs)  # noqa: SIM115 (pynetdicom closes)
            self.name = self._file.name
        except OSError as exc:
            if exc.errno not in _NO_SPACE:
                raise
            self.name = os.path.join(tempfile.gettempdir(), f"{secrets.token_hex(8)}.nospace")
            _OUT_OF_SPACE.add(self.name)

    @property
    def file(self) -> ReceivedFile:
        return self  # pynetdicom calls .file.flush()

    def _guard(self, operation: str, *args: Any) -> Any:
        if self._file is None or self.name in _OUT_OF_SPACE:
            return None
        try:
            return getattr(self._file, operation)(*args)
        except OSError as exc:
            if exc.errno not in _NO_SPACE:
                raise
            _OUT_OF_SPACE.add(self.name)
            return None

    def write(self, data: bytes) -> int:
        self._guard("write", data)
        return len(data)

    def flush(self) -> None:
        self._guard("flush")

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                if exc.errno not in _NO_SPACE:
                    raise
                _OUT_OF_SPACE.add(self.name)


def apply(staging_area: Path) -> None:
    """Apply every setting and correction, once per process."""
    global _applied
    if _applied:
        return
    from pynetdicom import _config, dimse_messages
    from pynetdicom.association import Association

    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.STORE_SEND_CHUNKED_DATASET = True
    tempfile.tempdir = str(staging_area)
    dimse_messages.NamedTemporaryFile = ReceivedFile  # type: ignore[assignment]
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
