"""Repository maintenance as jobs on the real servers: with short periods, the backup service asks on its own for
each repository's garbage collection and for the verification of each backup once it is due, once per period; a
backup whose chunk was damaged is found and marked bad without anyone asking."""

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import assert_eventually
from tests.integration.backup_support import BackupStack, backup_stack
from tests.integration.plugins_qcow2fs_support import guest_write

pytestmark = pytest.mark.integration
__all__ = ["backup_stack"]
PERIOD = 2.0  # seconds between jobs, for the test: days in a deployment


@pytest.fixture(autouse=True)
def short_periods() -> Iterator[None]:
    """Set before the stack starts (autouse fixtures come first): the backup service reads them at build."""
    names = ("STRATA_BACKUP_GC_INTERVAL_SECONDS", "STRATA_BACKUP_VERIFY_INTERVAL_SECONDS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: str(PERIOD) for name in names})
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


async def test_collections_and_verifies_are_asked_for_when_due(backup_stack: BackupStack, tmp_path: Path) -> None:
    stack = backup_stack
    store = tmp_path / "repo"
    store.mkdir()
    repository_id = await stack.add_repository("fsbackup", {"path": str(store), "compression": "none"})
    volume_id = await stack.create_volume(4 << 20)
    await guest_write(stack.paths[volume_id], 0x6B, 0, 1 << 20)
    sound = await stack.backup(volume_id, repository_id)
    damaged = await stack.backup(volume_id, repository_id)
    db = stack.system.pool

    async def verified() -> bool:
        rows = await db.fetch(
            "SELECT verified_at FROM backup.backups WHERE backup_id = ANY($1::uuid[])", [sound.backup_id]
        )
        return all(row["verified_at"] is not None for row in rows)

    await assert_eventually(verified, timeout=30, what="the backup verified without being asked")
    collected = await db.fetchval("SELECT next_gc_at FROM backup.repositories WHERE repository_id = $1", repository_id)
    assert collected is not None, "the repository's collection was asked for"

    # Damage a chunk both backups name (nothing changed between them): the next verify job of the second finds it.
    chunks = await asyncio.to_thread(lambda: [path for path in store.rglob("chunks/*/*") if path.is_file()])
    assert chunks
    await asyncio.to_thread(chunks[0].write_bytes, b"not the chunk it was")

    async def marked_bad() -> bool:
        bad = await db.fetchval("SELECT verify_bad FROM backup.backups WHERE backup_id = $1", damaged.backup_id)
        return bool(bad)

    await assert_eventually(marked_bad, timeout=30, what="the damaged backup found and marked by a verify job")
