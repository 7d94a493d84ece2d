"""A one-file HTTP server for as long as a block runs: how `strata template upload` streams a local file to the
image stores (the image service downloads it from here, checksum and all), and how the demo serves its template.

The file is served at a random path, so that only who was told the URL can fetch it; `Range` requests are
answered, so that an interrupted download resumes.
"""

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-$")
BLOCK = 1 << 20


@asynccontextmanager
async def serve_file(path: Path, *, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve `path` on `host` (a free port) while the block runs; yield its URL."""
    size = (await asyncio.to_thread(path.stat)).st_size
    token = secrets.token_urlsafe(16)
    wanted = f"/{token}/{path.name}"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            target = request.split(" ", 2)[1] if request.count(" ") >= 2 else ""
            if target != wanted:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            start = 0
            for line in request.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                ranged = _RANGE.match(value.strip()) if name.strip().lower() == "range" else None
                if ranged and int(ranged[1]) < size:
                    start = int(ranged[1])
            status = f"206 Partial Content\r\nContent-Range: bytes {start}-{size - 1}/{size}" if start else "200 OK"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Length: {size - start}\r\nAccept-Ranges: bytes\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await _send(writer, path, start)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(answer, host, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}{wanted}"
    finally:
        server.close()


async def _send(writer: asyncio.StreamWriter, path: Path, start: int) -> None:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(handle.seek, start)
        while block := await asyncio.to_thread(handle.read, BLOCK):
            writer.write(block)
            await writer.drain()
    finally:
        await asyncio.to_thread(handle.close)
