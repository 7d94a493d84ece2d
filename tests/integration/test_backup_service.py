"""The backup service with every other service on RabbitMQ and PostgreSQL, a real qcow2fs pool and fsbackup.

Full backup of a volume with data; 5% changed; an incremental that reads only what changed; restores of both to
new volumes and in place, each compared by sha256 with the volume at that point; a corrupted chunk found by verify
and the restore from that backup refused.
"""

import os
import uuid
from pathlib import Path

import pytest

from schemas.backup import BackupKind, BackupRestored, BackupRestoreFailed, RestoreBackup
from services.cli.sending import CommandFailed
from tests.integration.backup_support import HOST, MIB, TIMEOUT, BackupStack, backup_stack
from tests.integration.plugins_qcow2fs_support import run

pytestmark = pytest.mark.integration
__all__ = ["backup_stack"]

SIZE = 16 * MIB
CLUSTER_BYTES = 64 * 1024


async def _write_random(path: Path, offset: int, length: int, scratch: Path) -> None:
    source = scratch / f"random-{uuid.uuid4().hex[:6]}.bin"
    source.write_bytes(os.urandom(length))
    await run("qemu-io", "-f", "qcow2", "-c", f"write -s {source} {offset} {length}", str(path))
    source.unlink()


async def test_full_incremental_restores_and_verify_on_fsbackup(backup_stack: BackupStack, tmp_path: Path) -> None:
    stack = backup_stack
    store = tmp_path / "backups"
    store.mkdir()
    repository = await stack.add_repository("fsbackup", {"path": str(store)})
    volume = await stack.create_volume(SIZE)
    await _write_random(stack.paths[volume], 0, 8 * MIB, tmp_path)
    first_sum = await stack.checksum(volume)

    full = await stack.backup(volume, repository)
    assert full.kind is BackupKind.FULL
    assert full.bytes_read == 8 * MIB
    # The volume's first snapshot is a full copy on qcow2fs, so the next backup cannot tell what changed since.
    await _write_random(stack.paths[volume], 0, CLUSTER_BYTES, tmp_path)
    unknown = await stack.backup(volume, repository)
    assert unknown.kind is BackupKind.INCREMENTAL
    assert not unknown.changed_blocks
    assert unknown.note is not None
    assert "compared chunk hashes" in unknown.note
    assert unknown.bytes_written <= 1.1 * CLUSTER_BYTES + 8192

    changed = 13 * CLUSTER_BYTES  # 5% of the volume, scattered
    for index in range(13):
        await _write_random(stack.paths[volume], index * 19 * CLUSTER_BYTES, CLUSTER_BYTES, tmp_path)
    second_sum = await stack.checksum(volume)
    incremental = await stack.backup(volume, repository)
    assert incremental.kind is BackupKind.INCREMENTAL
    assert incremental.parent_id == unknown.backup_id
    assert incremental.changed_blocks, incremental.note
    assert incremental.bytes_read == changed
    assert incremental.bytes_written <= 1.1 * changed

    snapshots = await stack.system.pool.fetch(
        "SELECT state FROM snapshot.snapshots WHERE volume_id = $1 ORDER BY created_at", volume
    )
    # The backups' snapshots are kept as anchors of one delta chain; none is left in BackingUp.
    assert [row["state"] for row in snapshots] == ["BackedUp", "BackedUp", "BackedUp"]

    first = await stack.restore(full.backup_id)
    second = await stack.restore(incremental.backup_id)
    assert await stack.checksum(first) == first_sum
    assert await stack.checksum(second) == second_sum

    await stack.restore(full.backup_id, volume_id=volume)  # in place: the volume holds the first data again
    assert await stack.checksum(volume) == first_sum

    assert (await stack.verify(full.backup_id)).bad == ()
    victim = next(path for path in (store / "chunks").rglob("*") if path.is_file())
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0x01
    victim.write_bytes(bytes(data))
    verified = await stack.verify(full.backup_id)
    assert len(verified.bad) == 1
    assert "corrupted" in verified.bad[0]
    with pytest.raises(CommandFailed, match="failed its verify"):
        await stack.client.send(
            RestoreBackup(
                restore_id=uuid.uuid4(),
                backup_id=full.backup_id,
                volume_id=uuid.uuid4(),
                name="refused",
                zone_id=stack.zone_id,
                host=HOST,
            ),
            (BackupRestored,),
            (BackupRestoreFailed,),
            timeout=TIMEOUT,
        )
