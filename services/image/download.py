"""Downloading an image over HTTP(S) to a local staging file: resumable, bounded in size and time, hashed as it
arrives, with progress.

A partial file from an earlier attempt (a dropped connection, a stall, a restart of the service) is resumed with a
`Range` request when the server allows it, and started again otherwise. Errors say which check failed: `download`
(the server, the network, a stall, a truncated body) is worth another attempt (`Transient`); `size` is not.
"""

import asyncio
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from plugins.chunked.sinks import append_all
from schemas.errors import InvalidArgument, Transient

BATCH_BYTES = 8 << 20
HASHED_BLOCK = 4 << 20


class Hasher(Protocol):
    """What `hashlib` objects offer."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


Progress = Callable[[int, int | None], None]
"""`progress(done_bytes, total_bytes or None)`."""


@dataclass(frozen=True)
class Downloaded:
    """A complete download: its size and the digests asked for (hex, by hashlib name)."""

    size_bytes: int
    digests: dict[str, str]


def digest_file(path: Path, algorithms: set[str]) -> dict[str, str]:
    """The file's digests (hex, by hashlib name), read once (blocking)."""
    hashers: dict[str, Hasher] = {name: hashlib.new(name) for name in algorithms}
    _hash_existing(path, hashers)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def _hash_existing(path: Path, hashers: dict[str, Hasher]) -> int:
    """Feed what an earlier attempt wrote to the hashers (blocking); its size."""
    size = 0
    try:
        with path.open("rb") as partial:
            while block := partial.read(HASHED_BLOCK):
                size += len(block)
                for hasher in hashers.values():
                    hasher.update(block)
    except FileNotFoundError:
        return 0
    return size


def _content_total(response: aiohttp.ClientResponse, offset: int) -> int | None:
    """The whole file's size as the response tells it (from Content-Range on a 206), or None."""
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")
        total = content_range.rpartition("/")[2]
        return int(total) if total.isdigit() else None
    return response.content_length


def _unsatisfied_total(response: aiohttp.ClientResponse) -> int | None:
    """The file's size a 416 answer gives (`Content-Range: bytes */N`), or None."""
    unit, _, total = response.headers.get("Content-Range", "").partition(" */")
    return int(total) if unit == "bytes" and total.isdigit() else None


async def download(
    url: str,
    target: Path,
    *,
    algorithms: set[str],
    max_bytes: int,
    stall_seconds: float,
    progress: Progress,
) -> Downloaded:
    """Fetch `url` into `target` (resuming what it holds), hashing with `algorithms`; the caller bounds the time."""
    hashers: dict[str, Hasher] = {name: hashlib.new(name) for name in algorithms}
    offset = await asyncio.to_thread(_hash_existing, target, hashers)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=stall_seconds, sock_read=stall_seconds)
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
            session.get(url, headers=headers, allow_redirects=True, max_redirects=5) as response,
        ):
            if response.status == 416 and offset and _unsatisfied_total(response) == offset:
                # The staging file is the whole file already (its worker died after the fetch, in the checks or the
                # store's put): nothing is left to fetch; the caller checks what it holds.
                progress(offset, offset)
                return Downloaded(
                    size_bytes=offset, digests={name: hasher.hexdigest() for name, hasher in hashers.items()}
                )
            if response.status == 416 and offset:
                # The partial file is no prefix the server knows (the image changed): start again.
                await asyncio.to_thread(target.unlink, True)
                raise Transient(f"download: the server refused to resume at byte {offset}; starting again")
            if response.status not in (200, 206):
                raise _status_error(response.status, response.reason)
            if response.status == 200 and offset:
                offset = 0  # the server ignored the range: the whole file comes again
                hashers = {name: hashlib.new(name) for name in algorithms}
            total = _content_total(response, offset)
            if total is not None and total > max_bytes:
                raise InvalidArgument(
                    f"size check: the server announces {total} bytes, more than the limit of {max_bytes}", field="url"
                )
            done = await _receive(
                response, target, offset, hashers=hashers, max_bytes=max_bytes, total=total, progress=progress
            )
    except aiohttp.ServerTimeoutError:
        raise Transient(f"download: the server sent nothing for {stall_seconds:g} s (stalled)") from None
    except aiohttp.ClientPayloadError as error:
        raise Transient(f"download: the body was truncated ({error})") from None
    except aiohttp.ClientError as error:
        raise Transient(f"download: {type(error).__name__}: {error}") from None
    if total is not None and done != total:
        raise Transient(f"download: truncated: received {done} of {total} bytes")
    return Downloaded(size_bytes=done, digests={name: hasher.hexdigest() for name, hasher in hashers.items()})


async def _receive(
    response: aiohttp.ClientResponse,
    target: Path,
    offset: int,
    *,
    hashers: dict[str, Hasher],
    max_bytes: int,
    total: int | None,
    progress: Progress,
) -> int:
    """Receive the body into the file through an `_Absorber`; the bytes received."""
    done = offset
    fd = await asyncio.to_thread(
        os.open, target, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if offset else os.O_TRUNC), 0o644
    )
    absorber = _Absorber(fd, hashers, lambda written: progress(written, total))
    try:
        async for piece in response.content.iter_any():
            done += len(piece)
            if done > max_bytes:
                raise InvalidArgument(
                    f"size check: the image is larger than the limit of {max_bytes} bytes", field="url"
                )
            await absorber.add(piece, done)
        await absorber.drain()
    finally:
        await absorber.stop()
        await asyncio.shield(asyncio.to_thread(os.close, fd))
    return done


class _Absorber:
    """Writes and hashes received pieces in two threads (one each) while the next ones arrive: what came in since the
    last hand-over goes to them as soon as they are done with it, so the event loop only receives. The pieces are
    never joined (the writer takes them with one `writev`, the hashers one by one), and hashing and writing each
    release the GIL, so they overlap. Progress counts the bytes in the file, which is what a resumed download keeps;
    past `BATCH_BYTES` waiting, receiving waits for the threads."""

    def __init__(self, fd: int, hashers: dict[str, Hasher], written: Callable[[int], None]) -> None:
        self.fd, self.hashers, self.written = fd, hashers, written
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.upto = 0
        self.running: asyncio.Future[tuple[None, None]] | None = None
        self.error: BaseException | None = None

    async def add(self, piece: bytes, upto: int) -> None:
        self._raise()
        self.pending.append(piece)
        self.pending_bytes += len(piece)
        self.upto = upto
        if self.running is None:
            self._hand_over()
        elif self.pending_bytes >= BATCH_BYTES:
            await asyncio.wait([self.running])
            self._raise()

    def _hand_over(self) -> None:
        pieces, upto = self.pending, self.upto
        self.pending, self.pending_bytes = [], 0
        self.running = _absorb(self.fd, self.hashers, pieces)
        self.running.add_done_callback(lambda future: self._finished(future, upto))

    def _finished(self, future: "asyncio.Future[tuple[None, None]]", upto: int) -> None:
        self.running = None
        if future.cancelled():
            return
        if (error := future.exception()) is not None:
            self.error = error
            return
        self.written(upto)
        if self.pending:
            self._hand_over()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    async def drain(self) -> None:
        """Wait until every piece added is in the file and hashed."""
        while self.running is not None:
            await asyncio.wait([self.running])
        self._raise()
        if self.pending:
            self._hand_over()
            await self.drain()

    async def stop(self) -> None:
        """Let the threads finish what they hold (a write cannot be taken back), adding nothing more."""
        self.pending = []
        while self.running is not None:
            await asyncio.wait([self.running])


def _absorb(fd: int, hashers: dict[str, Hasher], pieces: list[bytes]) -> "asyncio.Future[tuple[None, None]]":
    """Append the pieces (one thread) and hash them (another), at once; done when both are."""
    return asyncio.gather(asyncio.to_thread(append_all, fd, pieces), asyncio.to_thread(_hash, hashers, pieces))


def _hash(hashers: dict[str, Hasher], pieces: list[bytes]) -> None:
    for hasher in hashers.values():
        for piece in pieces:
            hasher.update(piece)


def _status_error(status: int, reason: str | None) -> InvalidArgument | Transient:
    text = f"download: the server answered {status} {reason or ''}".rstrip()
    if status in (408, 429) or status >= 500:
        return Transient(text)
    return InvalidArgument(text, field="url")
