"""What C-MOVE and C-GET send for each matched instance: its stored file, streamed unchanged
when the peer accepted its transfer syntax, else a decompressed or re-encoded copy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_context
from pynetdicom.presentation import PresentationContext

from storage import Archive
from storage.errors import ArchiveError
from storage.records import InstanceFile

log = logging.getLogger(__name__)
MAX_CONTEXTS = 128  # presentation contexts one association may propose (PS3.8 9.3.2.2)


def contexts_for(matches: list[InstanceFile]) -> list[PresentationContext]:
    """Presentation contexts for sending the matches: each SOP class with its stored transfer
    syntax (and the uncompressed ones)."""
    by_class: dict[str, set[str]] = {}
    for match in matches:
        by_class.setdefault(match.sop_class, set()).add(match.transfer_syntax)
    contexts = []
    for sop_class, syntaxes in sorted(by_class.items()):
        for syntax in sorted(syntaxes):
            contexts.append(build_context(sop_class, [syntax]))
        contexts.append(build_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
    return contexts[:MAX_CONTEXTS]


class StoredFile(Dataset):
    """Stands for an instance file in C-MOVE / C-GET results: pynetdicom's retrieve services
    accept only Dataset objects, while its C-STORE can stream a file without decoding it
    (dimse.patches lets send_c_store take one of these)."""

    def __init__(self, archive: Archive, item: InstanceFile) -> None:
        super().__init__()
        self.SOPInstanceUID = item.instance
        self._archive = archive
        self._item = item

    def sendable(self, accepts: Callable[[str, UID], bool], cleanup: ExitStack) -> Path | Dataset:
        """What to send to a peer that accepts (SOP class, transfer syntax) pairs as
        *accepts* says; temporary files are removed when *cleanup* closes.

        The file itself, streamed unchanged, when the peer accepted its transfer syntax.
        When it accepted only an uncompressed one, compressed pixel data is decompressed
        into a temporary Explicit VR Little Endian file, streamed in turn (frame by frame,
        never the whole instance in memory). For a peer that takes only Implicit VR Little
        Endian the data set is then read so that pynetdicom re-encodes it: that conversion is
        lossless (PS3.5 A.1, A.2) but holds the instance in memory. When nothing works the
        stored file is offered and pynetdicom fails the sub-operation for want of a context.
        """
        item = self._item
        stored: Path = cleanup.enter_context(self._archive.local_file(item))
        syntax = UID(item.transfer_syntax)
        if accepts(item.sop_class, syntax):
            return stored
        explicit = accepts(item.sop_class, UID(ExplicitVRLittleEndian))
        implicit = accepts(item.sop_class, UID(ImplicitVRLittleEndian))
        if not (explicit or implicit):
            return stored
        if not syntax.is_compressed:
            return dcmread(stored)
        try:
            converted = self._archive.transcoded_file(item, ExplicitVRLittleEndian)
        except ArchiveError as exc:
            log.warning("cannot decompress %s for the peer: %s", item.instance, exc)
            return stored
        cleanup.callback(converted.unlink, missing_ok=True)
        return converted if explicit else dcmread(converted)


def accepted_by(assoc: Any) -> Callable[[str, UID], bool]:
    """Whether the association has an accepted context for (SOP class, transfer syntax)."""

    def accepts(sop_class: str, syntax: UID) -> bool:
        try:
            assoc._get_valid_context(sop_class, syntax, "scu", allow_conversion=False)
        except ValueError:
            return False
        return True

    return accepts
