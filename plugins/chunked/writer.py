"""Taking a backup: read the source off the event loop, hash every chunk, store only the chunks the store lacks,
then write the manifest last, so that a crash at any point leaves no manifest naming a missing chunk."""

import asyncio
import errno
import os
import re
import stat
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from plugins.chunked.codec import Compression, Stored, chunk_key, chunk_name, encode_chunk_parts, joined, stored_length
from plugins.chunked.digests import WholeDigest
from plugins.chunked.errors import first_error
from plugins.chunked.manifest import BackupManifest, encode_manifest, encode_summary, manifest_key, summary_key
from plugins.chunked.markers import backup_marker
from plugins.chunked.ports import BlobStore, LocalBlobs
from plugins.chunked.reading import load_manifest, load_manifest_if_any
from plugins.chunked.settings import ChunkedSettings, ProgressCallback
from schemas.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Transient

_READ_AHEAD = 2
"""Windows read, hashed and compressed at once (each in a worker thread, taken in order): two keep both cores of a
small host busy where one left the second to the uploads alone."""

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

BeforeManifest = Callable[[], Awaitable[None]]
"""Hook awaited after every chunk is stored and before the manifest is written (where fault points go)."""

Labels = dict[str, str] | Callable[[], dict[str, str]]
"""A backup's labels, or a function that makes them once every chunk is read (from a `WholeDigest`); it may raise
to refuse the backup, whose manifest is then never written."""


@dataclass(frozen=True)
class BackupResult:
    """What a backup produced and what it cost."""

    manifest: BackupManifest
    bytes_read: int
    bytes_written: int
    """Bytes put into the store by this call: new chunks plus the manifest."""
    chunks_written: int
    chunks_reused: int
    holes: int
    already_existed: bool
    """True when a manifest with this backup id was already there and was returned as is."""
    bytes_reused: int = 0
    """Plain bytes of chunks that were not stored again (the parent's, or already in the store)."""


@dataclass
class Tally:
    """What a backup stored and reused as it went."""

    bytes_written: int = 0
    chunks_written: int = 0
    chunks_reused: int = 0
    bytes_reused: int = 0
    """Plain bytes of the chunks this backup did not have to store (the parent's, or already in the store)."""
    holes: int = 0


@dataclass(frozen=True)
class PreparedChunk:
    """One chunk of the source, named and (when it may be new) encoded."""

    digest: str | None  # None: all zeros
    payload: Stored | None  # the stored form, when the parent does not already have it
    length: int


NewChunk = tuple[str, Stored, int]
"""A chunk this backup stores unless the store has it: (key, stored form, plain length)."""

PrepareWindow = Callable[[int, int, int], list[PreparedChunk]]
"""`prepare(offset, length, chunk_size)`: read, name and encode the chunks of one window (in a worker thread)."""


def check_id(value: str, field: str) -> None:
    """Refuse an id that could not be used safely as part of an object key."""
    if not _ID_PATTERN.match(value):
        raise InvalidArgument(
            f"{field} {value!r} must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field=field,
        )


def check_ids(backup_id: str, volume_id: str, parent_id: str | None) -> None:
    """Refuse ids that cannot name a backup."""
    check_id(backup_id, "backup_id")
    if not volume_id:
        raise InvalidArgument("volume_id must not be empty", field="volume_id")
    if parent_id is not None:
        check_id(parent_id, "parent_id")


async def write_backup(
    store: BlobStore,
    settings: ChunkedSettings,
    *,
    backup_id: str,
    volume_id: str,
    source: Path,
    parent_id: str | None = None,
    labels: Labels | None = None,
    progress: ProgressCallback | None = None,
    before_manifest: BeforeManifest | None = None,
    whole: WholeDigest | None = None,
) -> BackupResult:
    """Back `source` up as `backup_id`; incremental against `parent_id` when given; `whole` is fed every byte read,
    in order. Idempotent on `backup_id`."""
    check_ids(backup_id, volume_id, parent_id)
    existing = await load_manifest_if_any(store, backup_id)
    if existing is not None:
        return same_backup(existing, volume_id, parent_id)
    async with backup_marker(store, backup_id, settings):
        # The parent is read only once our marker is up: from then on no sweep frees its chunks, so reusing them
        # without an exists check is safe even if the parent itself is deleted meanwhile.
        parent = await load_parent(store, parent_id, volume_id) if parent_id else None
        chunk_size = parent.chunk_size if parent else settings.chunk_size
        known = parent.digests() if parent else set()
        try:
            fd = await asyncio.to_thread(os.open, source, os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound(f"source {source} does not exist", field="source") from None
        except OSError as error:
            raise InvalidArgument(f"source {source} cannot be read: {error.strerror}", field="source") from None
        try:
            mode = os.fstat(fd).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
                raise InvalidArgument(f"source {source} is not a file or a block device", field="source")
            size = await asyncio.to_thread(os.lseek, fd, 0, os.SEEK_END)
            tally = Tally()

            def prepare(offset: int, length: int, chunk_size: int) -> list[PreparedChunk]:
                return _prepare_window(
                    fd,
                    offset=offset,
                    length=length,
                    chunk_size=chunk_size,
                    compression=settings.compression,
                    known=known,
                    whole=whole,
                )

            digests = await store_chunks(
                store,
                settings,
                prepare=prepare,
                size=size,
                chunk_size=chunk_size,
                known=known,
                tally=tally,
                progress=progress,
            )
        except OSError as error:
            # An NFS hiccup or a device error may pass; anything else about the source will not.
            passing = error.errno in (errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN)
            reason = f"reading source {source} failed: {error.strerror or error}"
            raise (Transient(reason) if passing else FailedPrecondition(reason, field="source")) from None
        finally:
            os.close(fd)
            if whole is not None:
                await asyncio.shield(asyncio.to_thread(whole.close))
        if before_manifest is not None:
            await before_manifest()
        labels = labels() if callable(labels) else labels
        manifest = BackupManifest(
            backup_id=backup_id,
            volume_id=volume_id,
            size=size,
            chunk_size=chunk_size,
            parent_id=parent_id,
            created_at=datetime.now(UTC),
            chunks=digests,
            written_bytes=tally.bytes_written,
            labels=labels or {},
        )
        manifest_bytes = await write_manifest(store, manifest)
    return BackupResult(
        manifest=manifest,
        bytes_read=size,
        bytes_written=tally.bytes_written + manifest_bytes,
        chunks_written=tally.chunks_written,
        chunks_reused=tally.chunks_reused,
        holes=tally.holes,
        already_existed=False,
        bytes_reused=tally.bytes_reused,
    )


async def write_manifest(store: BlobStore, manifest: BackupManifest) -> int:
    """Write the summary, then the manifest (the commit point); return the bytes written."""
    encoded = encode_manifest(manifest)
    summary = encode_summary(manifest)
    await store.put(summary_key(manifest.backup_id), summary)  # invisible until the manifest exists
    await store.put(manifest_key(manifest.backup_id), encoded)
    return len(summary) + len(encoded)


def same_backup(existing: BackupManifest, volume_id: str, parent_id: str | None) -> BackupResult:
    if existing.volume_id != volume_id or existing.parent_id != parent_id:
        raise AlreadyExists(
            f"backup {existing.backup_id} already exists for volume {existing.volume_id} "
            f"with parent {existing.parent_id}",
            field="backup_id",
        )
    return BackupResult(
        manifest=existing,
        bytes_read=0,
        bytes_written=0,
        chunks_written=0,
        chunks_reused=0,
        holes=0,
        already_existed=True,
    )


async def load_parent(store: BlobStore, parent_id: str, volume_id: str) -> BackupManifest:
    try:
        parent = await load_manifest(store, parent_id)
    except NotFound:
        raise NotFound(f"parent backup {parent_id} does not exist", field="parent_id") from None
    if parent.volume_id != volume_id:
        raise InvalidArgument(
            f"parent backup {parent_id} is of volume {parent.volume_id}, not {volume_id}", field="parent_id"
        )
    return parent


class _Uploads:
    """The puts of a backup's new chunks, at most `concurrency` at once: one put each, or on a `LocalBlobs` store
    one thread call per window of chunks (made durable together by `finish`)."""

    def __init__(self, store: BlobStore, concurrency: int, tally: Tally, tasks: asyncio.TaskGroup) -> None:
        self.store = store
        self.local = store if isinstance(store, LocalBlobs) else None
        self.slots = asyncio.Semaphore(concurrency)
        self.tally = tally
        self.tasks = tasks

    def _count(self, written: bool, payload: Stored, length: int) -> None:
        if written:
            self.tally.bytes_written += stored_length(payload)
            self.tally.chunks_written += 1
        else:
            self.tally.chunks_reused += 1
            self.tally.bytes_reused += length

    async def add(self, chunks: list[NewChunk]) -> None:
        """Start storing a window's new chunks (waiting while `concurrency` puts are in flight)."""
        if self.local is not None:
            if chunks:
                await self.slots.acquire()
                self.tasks.create_task(self._put_window(self.local, chunks))
            return
        for key, payload, length in chunks:
            await self.slots.acquire()
            self.tasks.create_task(self._put(key, payload, length))

    async def _put(self, key: str, payload: Stored, length: int) -> None:
        try:
            written = not await self.store.exists(key)
            if written:
                await self.store.put(key, joined(payload))
            self._count(written, payload, length)
        finally:
            self.slots.release()

    async def _put_window(self, local: LocalBlobs, chunks: list[NewChunk]) -> None:
        try:
            flags = await asyncio.to_thread(_write_new_chunks, local, chunks)
            for (_, payload, length), written in zip(chunks, flags, strict=True):
                self._count(written, payload, length)
        finally:
            self.slots.release()

    async def finish(self) -> None:
        """Once every put is done: before a manifest names them, every chunk must survive a crash (those this
        backup wrote, and those another backup wrote that this one found already there)."""
        if self.local is not None:
            await self.local.make_durable()


async def store_chunks(
    store: BlobStore,
    settings: ChunkedSettings,
    *,
    prepare: PrepareWindow,
    size: int,
    chunk_size: int,
    known: set[str],
    tally: Tally,
    progress: ProgressCallback | None,
) -> list[str | None]:
    """Read window by window; store what is new (`_Uploads`); return the chunks' digests in order."""
    window = settings.window_bytes - settings.window_bytes % chunk_size
    claimed: set[str] = set()  # chunks this backup already stored or is storing
    digests: list[str | None] = []
    windows = iter(range(0, size, window))
    reading: deque[tuple[int, asyncio.Future[list[PreparedChunk]]]] = deque()

    def read_next() -> None:
        offset = next(windows, None)
        if offset is not None:
            length = min(window, size - offset)
            reading.append(
                (offset + length, asyncio.ensure_future(asyncio.to_thread(prepare, offset, length, chunk_size)))
            )

    try:
        async with asyncio.TaskGroup() as tasks:
            uploads = _Uploads(store, settings.concurrency, tally, tasks)
            for _ in range(_READ_AHEAD):
                read_next()
            while reading:
                end, next_window = reading.popleft()
                try:
                    prepared = await next_window
                except BaseException:
                    for _, later in reading:
                        later.cancel()
                    await asyncio.gather(*(later for _, later in reading), return_exceptions=True)
                    raise
                read_next()
                new: list[NewChunk] = []
                for chunk in prepared:
                    digests.append(chunk.digest)
                    if chunk.digest is None:
                        tally.holes += 1
                    elif chunk.digest in known or chunk.digest in claimed or chunk.payload is None:
                        tally.chunks_reused += 1
                        tally.bytes_reused += chunk.length
                    else:
                        claimed.add(chunk.digest)
                        new.append((chunk_key(chunk.digest), chunk.payload, chunk.length))
                await uploads.add(new)
                if progress is not None:
                    progress(end, size)
        await uploads.finish()
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return digests


def _write_new_chunks(local: LocalBlobs, chunks: list[NewChunk]) -> list[bool]:
    """Write a window's new chunks (in a worker thread); say which were not already in the store."""
    return [local.write_new_blocking(key, payload) for key, payload, _ in chunks]


def _prepare_window(
    fd: int,
    *,
    offset: int,
    length: int,
    chunk_size: int,
    compression: Compression,
    known: set[str],
    whole: WholeDigest | None = None,
) -> list[PreparedChunk]:
    """Read one window, and hash and compress its chunks (runs in a worker thread; hashlib, zlib and zstd release
    the GIL, so this overlaps with the uploads on the event loop)."""
    data = _read_exactly(fd, offset, length)
    if whole is not None:
        whole.update(offset, data)
    view = memoryview(data)
    prepared: list[PreparedChunk] = []
    for start in range(0, length, chunk_size):
        piece = view[start : start + chunk_size]
        digest = chunk_name(piece)
        if digest is None:
            prepared.append(PreparedChunk(digest=None, payload=None, length=len(piece)))
            continue
        payload = None if digest in known else encode_chunk_parts(piece, compression)
        prepared.append(PreparedChunk(digest=digest, payload=payload, length=len(piece)))
    return prepared


def _read_exactly(fd: int, offset: int, length: int) -> bytes:
    parts: list[bytes] = []
    remaining = length
    while remaining:
        part = os.pread(fd, remaining, offset + length - remaining)
        if not part:
            raise Transient(f"the source shrank while it was read (short read at offset {offset + length - remaining})")
        parts.append(part)
        remaining -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)
