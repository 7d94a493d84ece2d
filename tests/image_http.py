"""A small HTTP/1.1 server for download tests, on a free loopback port, with ways to misbehave that a real server
has: serve a file (with `Range`), cut the body short, or stall after the first bytes.

Raw asyncio rather than a framework, so that a test controls exactly what goes on the wire.
"""

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-$")


class Behaviour(Enum):
    """How a path is served."""

    SERVE = "serve"
    TRUNCATE = "truncate"
    """Announce the whole length, send half, close."""
    STALL = "stall"
    """Announce the whole length, send 64 KiB, then nothing until the server stops."""
    INTERRUPTED = "interrupted"
    """The first answer sends half and then nothing until the server stops (its client is killed meanwhile); later
    ones are served whole, or from the `Range` asked (a resumed download)."""


@dataclass
class ImageServer:
    """Files served by path, each with a behaviour; `url(name)` addresses one."""

    port: int = 0
    files: dict[str, tuple[Path, Behaviour]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Range header) of each request, for tests of resuming."""
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, name: str, path: Path, behaviour: Behaviour = Behaviour.SERVE) -> str:
        """Serve `path` as `/name`; return its URL."""
        self.files[name] = (path, behaviour)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        target = request.split(" ", 2)[1].lstrip("/")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in request.split("\r\n")[1:] if line)
        }
        self.requests.append((target, headers.get("range")))
        try:
            await self._answer(writer, target, headers.get("range"))
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, target: str, range_header: str | None) -> None:
        if target not in self.files:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            return
        path, behaviour = self.files[target]
        if behaviour is Behaviour.INTERRUPTED and sum(1 for asked, _ in self.requests if asked == target) > 1:
            behaviour = Behaviour.SERVE
        data = await asyncio.to_thread(path.read_bytes)
        size = len(data)
        start = 0
        ranged = _RANGE.match(range_header or "")
        if behaviour is Behaviour.SERVE and ranged and int(ranged[1]) >= size:  # as nginx and Apache answer
            writer.write(f"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\n".encode())
            writer.write(b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            return
        if behaviour is Behaviour.SERVE and ranged and int(ranged[1]) < size:
            start = int(ranged[1])
            head = f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{size - 1}/{size}\r\n"
        else:
            head = "HTTP/1.1 200 OK\r\n"
        head += f"Content-Length: {size - start}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"
        writer.write(head.encode())
        if behaviour is Behaviour.TRUNCATE:
            writer.write(data[: size // 2])
            await writer.drain()
            return
        if behaviour is Behaviour.STALL:
            writer.write(data[: 64 * 1024])
            await writer.drain()
            await self._stop.wait()
            return
        if behaviour is Behaviour.INTERRUPTED:
            writer.write(data[: size // 2])
            await writer.drain()
            await self._stop.wait()
            return
        for offset in range(start, size, 1 << 20):
            writer.write(data[offset : offset + (1 << 20)])
            await writer.drain()


@asynccontextmanager
async def image_server() -> AsyncIterator[ImageServer]:
    """A running server on a free port; stopped (stalled answers released) at the end."""
    server = ImageServer()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        server._stop.set()
        listening.close()
        await listening.wait_closed()
