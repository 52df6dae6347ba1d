"""multipart/related (RFC 2387) streaming: read request parts chunk by chunk, write responses."""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from dicomweb.http.errors import HTTPError

CHUNK = 1 << 20
# The header block of one part (RFC 2046 §5.1.1 sets no limit; a part of a STOW-RS request
# needs a Content-Type and a few more): longer, or with more lines, is a malformed body (400).
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADER_LINES = 64
# RFC 2046 §5.1.1: boundary := 0*69<bchars> bcharsnospace, bchars ASCII letters, digits,
# "'()+_,-./:=?" and space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


class BodyReader:
    """Reads a request body in chunks, enforcing Content-Length and a size limit."""

    def __init__(self, stream: BinaryIO, content_length: int | None, limit: int) -> None:
        self.stream = stream
        self.remaining = content_length
        self.limit = limit
        self.received = 0

    def read(self, size: int = CHUNK) -> bytes:
        if self.remaining is not None:
            if self.remaining <= 0:
                return b""
            size = min(size, self.remaining)
        data = self.stream.read(size)
        if self.remaining is not None:
            if not data:
                raise HTTPError(
                    400,
                    f"the request body ended after {self.received} bytes, before the "
                    f"{self.received + self.remaining} bytes its Content-Length announced",
                )
            self.remaining -= len(data)
        self.received += len(data)
        if self.received > self.limit:
            raise HTTPError(413, f"the request body is larger than the limit of {self.limit} bytes")
        return data


class MultipartReader:
    """Yields the parts of a multipart body; each part's bytes go to a sink, never all in memory.

    Usage: ``for headers in reader.parts(): reader.copy_body(sink)``.
    """

    def __init__(self, body: BodyReader, boundary: str) -> None:
        if _BOUNDARY.fullmatch(boundary) is None:
            raise HTTPError(
                400,
                f"the multipart boundary {boundary[:80]!r} is missing, longer than 70 "
                "characters or has characters RFC 2046 §5.1.1 does not allow",
            )
        self.body = body
        self.dash_boundary = b"--" + boundary.encode("latin-1")
        self.delimiter = b"\r\n" + self.dash_boundary
        self.buffer = bytearray()
        self.eof = False
        self.finished = False
        self.part_number = 0

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.body.read(CHUNK)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def _after_boundary(self) -> None:
        """Consume what follows a boundary: ``--`` (the end) or optional blanks and CRLF."""
        while len(self.buffer) < 2 and self._fill():
            pass
        if self.buffer[:2] == b"--":
            self.finished = True
            self.buffer.clear()
            return
        while True:
            end = self.buffer.find(b"\r\n")
            if end > MAX_HEADER_BYTES:
                raise HTTPError(400, "unexpected bytes after a multipart boundary")
            if end >= 0:
                if self.buffer[:end].strip(b" \t"):
                    raise HTTPError(400, "unexpected bytes after a multipart boundary")
                del self.buffer[: end + 2]
                return
            if len(self.buffer) > MAX_HEADER_BYTES or not self._fill():
                raise HTTPError(400, "the multipart body is truncated after a boundary")

    def _start(self) -> None:
        """Skip the preamble up to and including the first boundary."""
        while True:
            if self.buffer.startswith(self.dash_boundary):
                del self.buffer[: len(self.dash_boundary)]
                break
            found = self.buffer.find(self.delimiter)
            if found >= 0:
                del self.buffer[: found + len(self.delimiter)]
                break
            if len(self.buffer) > MAX_HEADER_BYTES:
                raise HTTPError(400, "no multipart boundary found where the body should start")
            if not self._fill():
                raise HTTPError(
                    400, "the body holds no part delimited by the boundary its Content-Type names"
                )
        self._after_boundary()

    def parts(self) -> Iterator[dict[str, str]]:
        """Yield each part's headers (lower-case names); call ``copy_body`` before the next."""
        self._start()
        while not self.finished:
            self.part_number += 1
            yield self._headers()
            if self._pending_body:
                self.copy_body(lambda _data: None)

    def _headers(self) -> dict[str, str]:
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0 or self.buffer.startswith(b"\r\n"):
                break
            if len(self.buffer) > MAX_HEADER_BYTES:
                raise HTTPError(400, f"the headers of part {self.part_number} are too long")
            if not self._fill():
                raise HTTPError(400, f"part {self.part_number} is truncated in its headers")
        headers: dict[str, str] = {}
        if self.buffer.startswith(b"\r\n"):
            del self.buffer[:2]
        else:
            # A whole header block may arrive in one chunk: its size is checked here too.
            if end > MAX_HEADER_BYTES:
                raise HTTPError(
                    400,
                    f"the headers of part {self.part_number} are longer than "
                    f"{MAX_HEADER_BYTES} bytes",
                )
            raw = bytes(self.buffer[:end]).decode("latin-1")
            if raw.count("\r\n") >= MAX_HEADER_LINES:
                raise HTTPError(
                    400,
                    f"part {self.part_number} has more than {MAX_HEADER_LINES} header lines",
                )
            del self.buffer[: end + 4]
            for line in raw.split("\r\n"):
                name, colon, value = line.partition(":")
                if not colon:
                    raise HTTPError(400, f"malformed header line in part {self.part_number}")
                headers[name.strip().lower()] = value.strip()
        self._pending_body = True
        return headers

    _pending_body = False

    def copy_body(self, sink: Callable[[memoryview], None]) -> int:
        """Stream the current part's body into *sink*; returns its length."""
        size = 0
        keep = len(self.delimiter) - 1
        while True:
            found = self.buffer.find(self.delimiter)
            if found >= 0:
                if found:
                    sink(memoryview(self.buffer)[:found])
                size += found
                del self.buffer[: found + len(self.delimiter)]
                self._pending_body = False
                self._after_boundary()
                return size
            if len(self.buffer) > keep:
                cut = len(self.buffer) - keep
                with memoryview(self.buffer) as view:
                    sink(view[:cut])
                size += cut
                del self.buffer[:cut]
            if not self._fill():
                raise HTTPError(
                    400, f"part {self.part_number} is truncated: the body ended before its boundary"
                )


_PREFIX = secrets.token_hex(8)  # per process: boundaries nobody outside can predict
_COUNTER = itertools.count()


def new_boundary() -> str:
    """A boundary unique to this response (a fresh random token per response would cost a
    getrandom call on every frame request)."""
    return f"{_PREFIX}{next(_COUNTER):016x}"


def part_header(boundary: str, headers: dict[str, str]) -> bytes:
    lines = [f"--{boundary}"] + [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("latin-1")


def write_parts(
    boundary: str, parts: Iterable[tuple[dict[str, str], Iterable[bytes]]]
) -> Iterator[bytes]:
    """Encode (headers, body chunks) pairs as one multipart body, streaming."""
    for headers, chunks in parts:
        yield part_header(boundary, headers)
        yield from chunks
        yield b"\r\n"
    yield closing(boundary)
