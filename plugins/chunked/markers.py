"""Markers that keep a sweep from freeing chunks a running backup is about to reference.

A backup reuses chunks that already exist without rewriting them, so a sweep that ran while it was in flight
could free a chunk its manifest will name. Both sides write their marker first and look for the other's second
(Dekker's handshake over a strongly consistent store): at least one of them sees the other. A backup that sees a
sweep waits for it; a sweep that sees a backup frees nothing and leaves the chunks to a later sweep. Markers left
by crashed processes stop counting after their lease.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from plugins.chunked.ports import BlobStore
from plugins.chunked.settings import ChunkedSettings
from schemas.errors import Aborted
from schemas.ids import uuid7

BACKUP_MARKERS = "locks/backup/"
SWEEP_MARKERS = "locks/sweep/"
_POLL_SECONDS = 0.05


def _marker_body() -> bytes:
    return json.dumps({"since": datetime.now(UTC).isoformat()}).encode()


async def fresh_markers(store: BlobStore, prefix: str, lease: timedelta) -> list[str]:
    """Keys of the markers under `prefix` younger than `lease`."""
    oldest = datetime.now(UTC) - lease
    return [info.key async for info in store.list(prefix) if info.modified >= oldest]


@asynccontextmanager
async def backup_marker(store: BlobStore, backup_id: str, settings: ChunkedSettings) -> AsyncIterator[None]:
    """Announce a running backup, wait for any sweep in progress to finish, and withdraw it when done."""
    # A token of its own: two runs of the same backup id (a redelivered command) must not withdraw each other's.
    key = f"{BACKUP_MARKERS}{backup_id}.{uuid7()}"
    await store.put(key, _marker_body())
    try:
        deadline = time.monotonic() + settings.sweep_wait.total_seconds()
        while await fresh_markers(store, SWEEP_MARKERS, settings.sweep_lease):
            if time.monotonic() > deadline:
                raise Aborted(f"backup {backup_id}: a sweep of the backup store is still running; retry later")
            await asyncio.sleep(_POLL_SECONDS)
        yield
    finally:
        await store.delete(key)


@asynccontextmanager
async def sweep_marker(store: BlobStore, settings: ChunkedSettings) -> AsyncIterator[bool]:
    """Announce a sweep; yield whether it may free chunks (False while any backup is in flight)."""
    key = f"{SWEEP_MARKERS}{uuid7()}"
    await store.put(key, _marker_body())
    try:
        yield not await fresh_markers(store, BACKUP_MARKERS, settings.backup_lease)
    finally:
        await store.delete(key)
