"""Sending to a DICOMweb destination: one STOW-RS request per instance (PS3.18 10.5), its
stored file streamed from the blob store with a Content-Length (no chunked encoding)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import requests

from storage import Archive
from storage.records import StoredRecord
from wsiarchive.forwarding.config import Destination

TIMEOUT = (10.0, 300.0)  # seconds to connect, and between bytes of the response
# PS3.18 Table 10.5.3-1: Failed SOP Sequence, Failure Reason, Referenced SOP Instance UID
FAILED_SOP_SEQUENCE, FAILURE_REASON, REFERENCED_INSTANCE = "00081198", "00081197", "00081155"
DUPLICATE = 0x0111  # Duplicate SOP Instance (PS3.4 C.4.2.1.4.1): it is already there


class Body:
    """A multipart/related body read as a file (requests sends its len() as Content-Length
    and reads it in blocks), never the whole instance in memory."""

    def __init__(self, chunks: Iterator[bytes], size: int, boundary: str) -> None:
        self._head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._length = len(self._head) + size + len(self._tail)
        self._chunk, self._offset = memoryview(b""), 0

        def parts() -> Iterator[bytes]:
            yield self._head
            yield from chunks
            yield self._tail

        self._parts = parts()

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        """Up to *size* bytes (all that is left when negative); b"" at the end."""
        out = bytearray()
        while size < 0 or len(out) < size:
            if self._offset >= len(self._chunk):
                part = next(self._parts, None)
                if part is None:
                    break
                self._chunk, self._offset = memoryview(part), 0
                continue
            take = len(self._chunk) - self._offset if size < 0 else size - len(out)
            out += self._chunk[self._offset : self._offset + take]
            self._offset += take
        return bytes(out)


def stow(
    http: requests.Session, archive: Archive, destination: Destination, record: StoredRecord
) -> None:
    """Store *record* at *destination*; RuntimeError (with the reason) when it was not."""
    boundary = secrets.token_hex(16)
    stream = archive.instance_stream(record, record.transfer_syntax)
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
        "User-Agent": "wsiarchive-forward",
    }
    token = destination.token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = Body(stream.chunks, record.size, boundary)
    response = http.post(f"{destination.url}/studies", data=body, headers=headers, timeout=TIMEOUT)
    if response.status_code == 401:
        destination.token_refused()  # the retry asks for a new token
    reason = verdict(response, record.instance)
    if reason is not None:
        raise RuntimeError(reason)


def verdict(response: requests.Response, instance: str) -> str | None:
    """Whether the STOW-RS *response* (PS3.18 10.5.3) stored the one *instance* its request
    sent: None when it is stored, else why not. 200 is stored; 202 is stored with warnings
    unless the Failed SOP Sequence (0008,1198) lists the instance; a failure of Failure
    Reason 0111 (Duplicate SOP Instance, PS3.4 C.4.2.1.4.1) is the instance already there,
    which counts as stored (the crash window between a send and its record, docs); anything
    else is a failure. The one verdict of the forwarder and of `wsiarchive export --stow`."""
    if response.status_code == 200:
        return None
    failed = _failed(response)
    mine = [reason for uid, reason in failed if uid in (instance, None)]
    if mine and all(reason == DUPLICATE for reason in mine):
        return None
    if response.status_code == 202 and not mine:
        return None  # stored with warnings (coerced attributes, say)
    reasons = mine or [reason for _, reason in failed]
    detail = f" (failure reasons {', '.join(f'{r:04X}' for r in reasons)})" if reasons else ""
    text = response.content[:4096].decode("utf-8", "replace")[:200]
    return f"STOW-RS answered {response.status_code}{detail}: {text}"


def _failed(response: requests.Response) -> list[tuple[str | None, int]]:
    """The (Referenced SOP Instance UID, Failure Reason) of each item of the response's
    Failed SOP Sequence; the UID None when the item does not name it."""
    try:
        document = response.json()
    except ValueError:
        return []
    if isinstance(document, list):
        document = document[0] if document else {}
    if not isinstance(document, dict):
        return []
    failed = document.get(FAILED_SOP_SEQUENCE, {}).get("Value", [])
    found: list[tuple[str | None, int]] = []
    for item in failed if isinstance(failed, list) else []:
        if not isinstance(item, dict):
            continue
        uids = item.get(REFERENCED_INSTANCE, {}).get("Value", [])
        uid = str(uids[0]) if isinstance(uids, list) and uids else None
        values = item.get(FAILURE_REASON, {}).get("Value", [])
        found.extend((uid, int(v)) for v in values if isinstance(v, int))
    return found
