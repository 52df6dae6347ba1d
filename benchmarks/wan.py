"""A home line per connection: a TCP proxy on loopback that delays every byte by half the
round trip each way, every new connection by a round trip (the TCP handshake), and shares one
link's throughput per direction among all connections. Unlike DevTools throttling (latency
per request), TLS handshakes and HTTP/1.1's extra connections pay their round trips here."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

CHUNK = 16384


class _Link:
    """One direction of the shared line: bytes leave no faster than *rate* bytes/s."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.free_at = 0.0

    def slot(self, size: int) -> float:
        """When the last byte of *size* bytes has crossed the line (monotonic seconds)."""
        start = max(time.monotonic(), self.free_at)
        self.free_at = start + size / self.rate
        return self.free_at


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link, delay: float
) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(CHUNK):
            await queue.put((link.slot(len(data)) + delay, data))
    except (ConnectionError, OSError):
        pass
    await queue.put((0.0, b""))
    with suppress(ConnectionError, OSError):
        await sender


@contextmanager
def home_line(target_port: int, rtt_ms: float = 40, mbit: float = 50) -> Iterator[int]:
    """A proxy to 127.0.0.1:*target_port*; yields its port."""
    loop = asyncio.new_event_loop()
    down, up = _Link(mbit * 1e6 / 8), _Link(mbit * 1e6 / 8)
    half = rtt_ms / 2000

    async def connection(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2 * half)  # SYN, SYN-ACK
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            _pump(client_r, server_w, up, half), _pump(server_r, client_w, down, half)
        )

    started = threading.Event()
    holder: dict[str, asyncio.base_events.Server] = {}

    async def start() -> None:
        holder["server"] = await asyncio.start_server(connection, "127.0.0.1", 0)
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    started.wait(10)
    server = holder["server"]
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
