"""A one-file HTTP receiver for as long as a block runs: how `strata template|iso export --file` gets an image from
the image service, which PUTs it here. The file is taken at a random path (only who was told the URL can send it),
written to `<file>.partial` with its SHA-256 computed on the way, and renamed into place once all of its announced
`Content-Length` arrived; a send cut short leaves no file, and a second PUT (a retry) starts over.
"""

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

BLOCK = 1 << 20


@dataclass
class Received:
    """What arrived: the receiver's URL, and once a PUT completed, its size and SHA-256 (hex)."""

    url: str
    size_bytes: int | None = None
    sha256: str | None = None


@asynccontextmanager
async def receive_file(path: Path, *, host: str = "127.0.0.1") -> AsyncIterator[Received]:
    """Take one file by HTTP PUT into `path` while the block runs; yield what was received (filled in later)."""
    token = secrets.token_urlsafe(16)
    wanted = f"/{token}/{path.name}"
    partial = path.with_name(path.name + ".partial")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, target = [*head.split(" ", 2), "", ""][:2]
            length = _content_length(head)
            if method != "PUT" or target != wanted or length is None:
                status = "404 Not Found" if target != wanted else "411 Length Required"
                writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
                return
            if "100-continue" in head.lower():
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            digest = await _take(reader, partial, length)
            await asyncio.to_thread(partial.replace, path)
            received.size_bytes, received.sha256 = length, digest
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            await asyncio.to_thread(partial.unlink, True)
        finally:
            writer.close()

    server = await asyncio.start_server(answer, host, 0)
    port = server.sockets[0].getsockname()[1]
    received = Received(url=f"http://{host}:{port}{wanted}")
    try:
        yield received
    finally:
        server.close()
        await asyncio.to_thread(partial.unlink, True)


def _content_length(head: str) -> int | None:
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            return int(value.strip())
    return None


async def _take(reader: asyncio.StreamReader, partial: Path, length: int) -> str:
    """Write exactly `length` bytes of the body to `partial`; its SHA-256 (hex)."""
    digest = hashlib.sha256()
    handle: BinaryIO = await asyncio.to_thread(partial.open, "wb")
    try:
        left = length
        while left:
            block = await reader.readexactly(min(BLOCK, left))
            digest.update(block)
            await asyncio.to_thread(handle.write, block)
            left -= len(block)
        await asyncio.to_thread(handle.flush)
    finally:
        await asyncio.to_thread(handle.close)
    return digest.hexdigest()
