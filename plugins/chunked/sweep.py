"""Deleting backups and freeing the chunks that no remaining manifest references (mark and sweep)."""

import asyncio
from dataclasses import dataclass

from plugins.chunked.errors import first_error
from plugins.chunked.manifest import MANIFEST_PREFIX, backup_id_of, manifest_key, summary_key
from plugins.chunked.markers import sweep_marker
from plugins.chunked.ports import BlobStore
from plugins.chunked.reading import list_manifests, load_manifest_if_any
from plugins.chunked.settings import ChunkedSettings

CHUNK_PREFIX = "chunks/"


@dataclass(frozen=True)
class SweepResult:
    """What a sweep freed, or that it had to leave the chunks for later."""

    freed_chunks: int
    freed_bytes: int
    deferred: bool
    """True when a backup was in flight: nothing was freed, a later sweep will."""


async def delete_backup(store: BlobStore, settings: ChunkedSettings, backup_id: str) -> tuple[bool, SweepResult]:
    """Remove the manifest of `backup_id`, then sweep. Returns whether the backup existed (a retried delete of an
    already deleted backup succeeds, as CSI's DeleteVolume does)."""
    existed = await load_manifest_if_any(store, backup_id) is not None
    # The manifest goes first: from then on no reader can reach the backup, and its chunks are garbage unless
    # another manifest names them.
    await store.delete(manifest_key(backup_id))
    await store.delete(summary_key(backup_id))
    return existed, await sweep(store, settings)


async def delete_keys(store: BlobStore, keys: list[str], concurrency: int) -> None:
    """Delete `keys`, at most `concurrency` at once; the first project error of any fails the whole."""
    slots = asyncio.Semaphore(concurrency)

    async def delete(key: str) -> None:
        async with slots:
            await store.delete(key)

    try:
        async with asyncio.TaskGroup() as deletes:
            for key in keys:
                deletes.create_task(delete(key))
    except BaseExceptionGroup as group:
        raise first_error(group) from None


async def sweep(store: BlobStore, settings: ChunkedSettings) -> SweepResult:
    """Free every chunk that no manifest references, unless a backup is in flight (then free nothing)."""
    async with sweep_marker(store, settings) as may_free:
        if not may_free:
            return SweepResult(freed_chunks=0, freed_bytes=0, deferred=True)
        referenced: set[str] = set()
        finished: set[str] = set()
        for manifest in await list_manifests(store):
            referenced |= manifest.digests()
            finished.add(manifest.backup_id)
        garbage = [info async for info in store.list(CHUNK_PREFIX) if info.key.rsplit("/", 1)[-1] not in referenced]
        # Summaries of backups that crashed before their manifest (no backup is in flight, so none is pending).
        orphans = [
            info
            async for info in store.list(MANIFEST_PREFIX)
            if backup_id_of(info.key, summary=True) not in (None, *finished)
        ]
        await delete_keys(store, [info.key for info in garbage + orphans], settings.concurrency)
        return SweepResult(freed_chunks=len(garbage), freed_bytes=sum(info.size for info in garbage), deferred=False)
