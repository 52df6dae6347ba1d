"""The file a C-STORE data set is received into, which survives a full disk: a failed write is
remembered (and the file emptied) instead of breaking the association, so that the C-STORE
handler can answer A700 (dimse.patches makes pynetdicom use it)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

_failures: dict[str, OSError] = {}
_lock = threading.Lock()


def write_error(path: Path | str) -> OSError | None:
    """The error that interrupted receiving into *path*, forgotten once asked."""
    with _lock:
        return _failures.pop(str(path), None)


class ReceivedFile:
    """A NamedTemporaryFile (delete=False) whose writes stop at the first OSError."""

    def __init__(self, **kwargs: Any) -> None:
        self.error: OSError | None = None
        try:
            self._file: Any = tempfile.NamedTemporaryFile(**kwargs)  # noqa: SIM115
            self.name = self._file.name
        except OSError as exc:  # not even the file could be made
            self._file = open(os.devnull, "wb")  # noqa: SIM115 (closed by close())
            self.name = str(Path(tempfile.gettempdir()) / f"unwritable-{id(self)}.dcm")
            self._failed(exc)

    @property
    def file(self) -> ReceivedFile:
        return self  # pynetdicom calls .file.flush()

    def _failed(self, exc: OSError) -> None:
        self.error = exc
        with _lock:
            _failures[self.name] = exc
        # Give the space back at once: the peer gets A700, the data is lost anyway.
        with contextlib.suppress(OSError, ValueError):
            os.ftruncate(self._file.fileno(), 0)

    def write(self, data: bytes) -> int:
        if self.error is None:
            try:
                return int(self._file.write(data))
            except OSError as exc:
                self._failed(exc)
        return len(data)

    def flush(self) -> None:
        if self.error is None:
            try:
                self._file.flush()
            except OSError as exc:
                self._failed(exc)

    def tell(self) -> int:
        return int(self._file.tell())

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:  # the buffered rest could not be written either
            if self.error is None:
                self._failed(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)
