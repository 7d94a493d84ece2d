"""Backups from a block map: read only what the map marks changed since the parent, and checks of data by hashes.

With a parent taken from the `since` snapshot of the map, a chunk that no changed extent touches keeps the parent's
digest without a byte read (changed-block incremental). When the map cannot tell what changed (`changes_known`
False), every chunk is read and named, and only chunks the store lacks are written (the hash-compare fallback). All-
zero runs are holes either way, read from nowhere. Every manifest still lists every chunk: each backup is logically
full.
"""

import asyncio
import itertools
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from plugins.chunked.codec import chunk_key, chunk_name, decode_chunk, encode_chunk_parts
from plugins.chunked.digests import WholeDigest
from plugins.chunked.errors import ChunkCorrupted, first_error
from plugins.chunked.manifest import BackupManifest
from plugins.chunked.markers import backup_marker
from plugins.chunked.ports import BlobStore
from plugins.chunked.reading import load_manifest, load_manifest_if_any
from plugins.chunked.settings import ChunkedSettings, ProgressCallback
from plugins.chunked.writer import (
    BackupResult,
    BeforeManifest,
    Labels,
    PreparedChunk,
    Tally,
    check_ids,
    load_parent,
    same_backup,
    store_chunks,
    write_manifest,
)
from plugins.sdk.blocks import BlockMap, BlockReader
from schemas.errors import FailedPrecondition, NotFound


@dataclass(frozen=True)
class BlockBackupResult:
    """A backup from a block map and how it read: `changed_blocks` False means it read everything."""

    result: BackupResult
    bytes_read: int
    changed_blocks: bool
    note: str | None


async def write_backup_from_blocks(
    store: BlobStore,
    settings: ChunkedSettings,
    *,
    backup_id: str,
    volume_id: str,
    blocks: BlockMap,
    parent_id: str | None = None,
    progress: ProgressCallback | None = None,
    before_manifest: BeforeManifest | None = None,
    labels: Labels | None = None,
    whole: WholeDigest | None = None,
) -> BlockBackupResult:
    """Back the map's bytes up as `backup_id`, against `parent_id` when given; idempotent on `backup_id`. `whole`
    (without a parent: every byte is read or known zero) is fed every byte of the map in order, holes as zeros;
    `labels` are added to the manifest's own."""
    check_ids(backup_id, volume_id, parent_id)
    existing = await load_manifest_if_any(store, backup_id)
    if existing is not None:
        return BlockBackupResult(same_backup(existing, volume_id, parent_id), 0, False, "already taken")
    async with backup_marker(store, backup_id, settings):
        parent = await load_parent(store, parent_id, volume_id) if parent_id else None
        chunk_size = parent.chunk_size if parent else settings.chunk_size
        known = parent.digests() if parent else set()
        changed_blocks, note = _how_to_read(blocks, parent)
        reader = BlockReader(blocks)
        tally = Tally()

        def prepare(offset: int, length: int, chunk_size: int) -> list[PreparedChunk]:
            prepared: list[PreparedChunk] = []
            for start in range(offset, offset + length, chunk_size):
                size = min(chunk_size, offset + length - start)
                if changed_blocks and parent is not None and not reader.any_changed(start, size):
                    digest = parent.chunks[start // chunk_size]
                    prepared.append(PreparedChunk(digest=digest, payload=None, length=size))
                    continue
                if reader.all_zero(start, size):
                    if whole is not None:
                        whole.update(start, bytes(size))
                    prepared.append(PreparedChunk(digest=None, payload=None, length=size))
                    continue
                data = reader.read(start, size)
                if whole is not None:
                    whole.update(start, data)
                digest = chunk_name(data)
                if digest is None:
                    prepared.append(PreparedChunk(digest=None, payload=None, length=size))
                    continue
                payload = None if digest in known else encode_chunk_parts(data, settings.compression)
                prepared.append(PreparedChunk(digest=digest, payload=payload, length=size))
            return prepared

        try:
            digests = await store_chunks(
                store,
                settings,
                prepare=prepare,
                size=blocks.size_bytes,
                chunk_size=chunk_size,
                known=known,
                tally=tally,
                progress=progress,
            )
        finally:
            await asyncio.to_thread(reader.close)
            if whole is not None:
                await asyncio.shield(asyncio.to_thread(whole.close))
        if before_manifest is not None:
            await before_manifest()
        extra = (labels() if callable(labels) else labels) or {}
        manifest = BackupManifest(
            backup_id=backup_id,
            volume_id=volume_id,
            size=blocks.size_bytes,
            chunk_size=chunk_size,
            parent_id=parent_id,
            created_at=datetime.now(UTC),
            chunks=digests,
            written_bytes=tally.bytes_written,
            labels={"read": "changed-blocks" if changed_blocks else "full", **extra},
        )
        manifest_bytes = await write_manifest(store, manifest)
    result = BackupResult(
        manifest=manifest,
        bytes_read=reader.bytes_read,
        bytes_written=tally.bytes_written + manifest_bytes,
        chunks_written=tally.chunks_written,
        chunks_reused=tally.chunks_reused,
        holes=tally.holes,
        already_existed=False,
        bytes_reused=tally.bytes_reused,
    )
    return BlockBackupResult(result, reader.bytes_read, changed_blocks, note)


def _how_to_read(blocks: BlockMap, parent: BackupManifest | None) -> tuple[bool, str | None]:
    """Whether unchanged chunks may take the parent's digests unread, and if not, why (for the backup's record)."""
    if parent is None:
        return False, None
    if not blocks.changes_known:
        return False, f"read everything and compared chunk hashes: {blocks.reason or 'changes unknown'}"
    if parent.size != blocks.size_bytes:
        return False, "read everything and compared chunk hashes: the volume was resized since the parent backup"
    return True, None


@dataclass(frozen=True)
class BadChunk:
    """A chunk that a check found missing or not matching its name."""

    index: int
    digest: str
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    """What a verify read: every distinct chunk of a backup, and the bad ones."""

    chunks: int
    bytes_checked: int
    bad: tuple[BadChunk, ...]


async def verify_backup(
    store: BlobStore, settings: ChunkedSettings, backup_id: str, progress: ProgressCallback | None = None
) -> VerifyResult:
    """Read every chunk of the backup back and check its SHA-256; report every missing or corrupted one."""
    manifest = await load_manifest(store, backup_id)
    firsts: dict[str, int] = {}
    for index, digest in enumerate(manifest.chunks):
        if digest is not None:
            firsts.setdefault(digest, index)
    slots = asyncio.Semaphore(settings.concurrency)
    bad: list[BadChunk] = []
    checked = 0

    async def check(digest: str, index: int) -> None:
        nonlocal checked
        async with slots:
            length = manifest.chunk_length(index)
            try:
                stored = await store.get(chunk_key(digest))
                await asyncio.to_thread(decode_chunk, stored, digest, length)
            except NotFound:
                bad.append(BadChunk(index, digest, "missing from the store"))
            except ChunkCorrupted as error:
                bad.append(BadChunk(index, digest, error.message))
            checked += length
            if progress is not None:
                progress(checked, manifest.size)

    try:
        async with asyncio.TaskGroup() as tasks:
            for digest, index in firsts.items():
                tasks.create_task(check(digest, index))
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return VerifyResult(chunks=len(firsts), bytes_checked=checked, bad=tuple(sorted(bad, key=lambda b: b.index)))


async def check_blocks_match(store: BlobStore, backup_id: str, blocks: BlockMap) -> int:
    """Check that the map's bytes are the backup's, chunk by chunk against the manifest's hashes; return the chunks
    compared. A mismatch raises `FailedPrecondition` naming the first chunk that differs. The chunks are split in
    one run per core, each read and hashed in a thread of its own (hashlib releases the GIL)."""
    manifest = await load_manifest(store, backup_id)
    if blocks.size_bytes != manifest.size:
        raise FailedPrecondition(
            f"restored data is {blocks.size_bytes} bytes where backup {backup_id} holds {manifest.size}"
        )
    count = len(manifest.chunks)
    runs = max(1, min(os.cpu_count() or 1, 8, count))
    bounds = [count * part // runs for part in range(runs + 1)]
    outcomes = await asyncio.gather(
        *(
            asyncio.to_thread(_compare, manifest, blocks, range(start, stop))
            for start, stop in itertools.pairwise(bounds)
        ),
        return_exceptions=True,
    )  # every run ends (none is cut short by another's failure), so the lowest mismatch is known
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    mismatches = [failure for failure in failures if isinstance(failure, _Mismatch)]
    if mismatches:
        raise FailedPrecondition(min(mismatches, key=lambda mismatch: mismatch.index).message)
    if failures:
        raise failures[0]
    return count


class _Mismatch(Exception):
    """A chunk of the data that differs from the backup's (the lowest index of all runs is reported)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


_CHECK_WINDOW = 4 * 1024 * 1024
"""Bytes the check reads at once: a restored volume is read back from the disk (its bytes were written past the page
cache), where one 4 MiB read costs about what one 32 KiB read does."""


def _compare(manifest: BackupManifest, blocks: BlockMap, indexes: range) -> None:
    reader = BlockReader(blocks)
    per_window = max(1, _CHECK_WINDOW // manifest.chunk_size)
    try:
        for first in range(indexes.start, indexes.stop, per_window):
            window = range(first, min(first + per_window, indexes.stop))
            offset = first * manifest.chunk_size
            length = sum(manifest.chunk_length(index) for index in window)
            data = None if reader.all_zero(offset, length) else memoryview(reader.read(offset, length))
            for index in window:
                start = index * manifest.chunk_size - offset
                piece = None if data is None else data[start : start + manifest.chunk_length(index)]
                actual = None if piece is None else chunk_name(piece)
                if actual != manifest.chunks[index]:
                    raise _Mismatch(
                        index,
                        f"restored data differs from backup {manifest.backup_id} at chunk {index} "
                        f"(bytes {offset + start}-{offset + start + manifest.chunk_length(index)}): nothing may use it",
                    )
    finally:
        reader.close()
