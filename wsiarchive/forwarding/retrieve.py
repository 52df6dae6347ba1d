"""Retrieving a study from a destination into this archive: from a DICOMweb one by WADO-RS
(PS3.18 10.4) with the stored transfer syntaxes kept (transfer-syntax=*), each part streamed
into the staging area and stored through the archive's one ingest; from a DIMSE one by C-GET
(dimse.retrieving) or by C-MOVE (dimse.moving) to the archive's listener or to a storage SCP
of the retrieve's own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import requests

from dicomweb.http.mediatypes import parse_media_type
from dicomweb.http.multipart import BodyReader, MultipartReader
from storage import Archive
from storage.access import Principal
from storage.dicom.uids import validate_uid
from storage.errors import ArchiveError, DuplicateInstance
from wsiarchive.forwarding.config import Destination, Kind

if TYPE_CHECKING:
    from dimse.moving import Moved

TIMEOUT = (10.0, 300.0)  # seconds to connect, and between bytes of the response
LIMIT = 1 << 50  # no limit on the response's size: each part goes to disk as it arrives
ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@dataclass
class Retrieved:
    """What a retrieve did."""

    stored: int = 0
    duplicates: int = 0  # held here already
    failed: int = 0
    reason: str = ""  # of the last failure
    moved: Moved | None = None  # by C-MOVE: what the peer says it did


@dataclass(frozen=True)
class Move:
    """Retrieve by C-MOVE to the AE titled *to*: the archive's listener, or with *receive_on*
    (host, port) a storage SCP of that title that the retrieve runs for the move."""

    to: str
    receive_on: tuple[str, int] | None = None


def retrieve(
    archive: Archive,
    destination: Destination,
    study: str,
    who: Principal,
    ae_title: str = "",
    move: Move | None = None,
) -> Retrieved:
    """Store every instance of *study* that *destination* holds (a DIMSE one is asked as
    *ae_title*, by C-GET or, with *move*, by C-MOVE); InvalidUID for a *study* that is not a
    UID, ValueError for a *move* from a DICOMweb destination, RuntimeError when the request
    itself fails."""
    validate_uid(study, "Study Instance UID")
    peer = (destination.ae_title, destination.host, destination.port)
    if move is not None:
        if destination.kind is not Kind.DIMSE:
            raise ValueError(f"{destination.name} is a {destination.kind} destination: no C-MOVE")
        from dimse.moving import move_study, receiving

        if move.receive_on is None:  # to the listener, which stores and audits
            return Retrieved(moved=move_study(ae_title, peer, study, move.to))
        with receiving(archive, move.to, move.receive_on, study, who) as got:
            moved = move_study(ae_title, peer, study, move.to)
        return Retrieved(got.stored, got.duplicates, got.failed, got.reason, moved)
    if destination.kind is Kind.DIMSE:
        from dimse.retrieving import get_study

        got = get_study(archive, ae_title, peer, study, who)
        return Retrieved(got.stored, got.duplicates, got.failed, got.reason)
    headers = {"Accept": ACCEPT, "User-Agent": "wsiarchive-retrieve"}
    token = destination.token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{destination.url}/studies/{study}"
    with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT) as response:
        if response.status_code != 200:
            raise RuntimeError(f"WADO-RS answered {response.status_code}: {response.text[:200]}")
        _, params = parse_media_type(response.headers.get("Content-Type", ""))
        response.raw.decode_content = True
        reader = MultipartReader(BodyReader(response.raw, None, LIMIT), params.get("boundary", ""))
        done = Retrieved()
        for _headers in reader.parts():
            staged = archive.stage()
            try:
                reader.copy_body(staged.write)
            except BaseException:
                staged.discard()
                raise
            try:
                archive.ingest(staged, who=who)
                done.stored += 1
            except DuplicateInstance:
                done.duplicates += 1
            except ArchiveError as exc:
                done.failed += 1
                done.reason = exc.reason
        return done
