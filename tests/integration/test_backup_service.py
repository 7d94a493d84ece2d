"""The backup service with every other service on RabbitMQ and PostgreSQL, a real qcow2fs pool, on fsbackup and on
s3 (a real SeaweedFS).

Full backup of a volume with data; 5% changed; an incremental that reads only what changed; restores of both to
new volumes and in place, each compared by sha256 with the volume at that point; a corrupted chunk found by verify
and the restore from that backup refused.
"""

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugins.chunked.codec import chunk_key
from plugins.sdk import faults
from schemas.backup import (
    BackupCreated,
    BackupCreateFailed,
    BackupKind,
    CollectRepositoryGarbage,
    CreateBackup,
    RepositoryGarbageCollected,
    RepositoryGarbageCollectFailed,
)
from schemas.backup_restores import BackupRestored, BackupRestoreFailed, RestoreBackup
from schemas.snapshot import CreateSnapshot, SnapshotCreated, SnapshotCreateFailed
from services.cli.sending import CommandFailed
from services.demo_data import VirtualMachine
from tests.helpers import assert_eventually
from tests.integration.backup_support import HOST, MIB, TIMEOUT, BackupStack, backup_stack
from tests.integration.plugins_qcow2fs_support import run
from tests.integration.test_plugins_fsbackup_plugin import open_plugin
from tests.seaweed import SeaweedS3, remove_bucket, shared_seaweed

pytestmark = pytest.mark.integration
__all__ = ["backup_stack"]

SIZE = 16 * MIB
CLUSTER_BYTES = 64 * 1024


async def _write_random(path: Path, offset: int, length: int, scratch: Path) -> None:
    source = scratch / f"random-{uuid.uuid4().hex[:6]}.bin"
    source.write_bytes(os.urandom(length))
    await run("qemu-io", "-f", "qcow2", "-c", f"write -s {source} {offset} {length}", str(path))
    source.unlink()


@dataclass
class Store:
    """A repository's plugin and configuration, and a way to corrupt one of its chunks."""

    plugin: str
    config: dict[str, object]

    async def corrupt_a_chunk(self, backup_id: uuid.UUID) -> None:
        driver = open_plugin(self.plugin, self.config)
        try:
            manifest = await driver.backups.manifest(str(backup_id))
            victim = chunk_key(next(digest for digest in manifest.chunks if digest is not None))
            stored = bytearray(await driver.store.get(victim))
            stored[-1] ^= 0x01
            await driver.store.put(victim, bytes(stored))
        finally:
            await driver.close()


@pytest.fixture(scope="session")
def seaweed() -> SeaweedS3:
    return shared_seaweed()


@pytest.fixture(params=["fsbackup", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "fsbackup":
        root = tmp_path / "backups"
        root.mkdir()
        yield Store("fsbackup", {"path": str(root)})
        return
    seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    yield Store(
        "s3",
        {
            "endpoint": seaweed.endpoint_url,
            "region": seaweed.region,
            "bucket": bucket,
            "access_key": seaweed.access_key,
            "secret_key": seaweed.secret_key,
            "create_bucket": True,
            "chunk_size_kib": CLUSTER_BYTES // 2048,  # 32 KiB, as fsbackup's: incrementals write what changed
        },
    )
    remove_bucket(seaweed, bucket)


async def test_full_incremental_restores_and_verify(backup_stack: BackupStack, store: Store, tmp_path: Path) -> None:
    stack = backup_stack
    repository = await stack.add_repository(store.plugin, store.config)
    volume = await stack.create_volume(SIZE)
    await _write_random(stack.paths[volume], 0, 8 * MIB, tmp_path)
    first_sum = await stack.checksum(volume)

    full = await stack.backup(volume, repository)
    assert full.kind is BackupKind.FULL
    assert full.bytes_read == 8 * MIB
    reported = await stack.system.pool.fetchval(
        "SELECT count(*) FROM bus.journal WHERE type = 'backup.progressed' AND payload->>'backup_id' = $1",
        str(full.backup_id),
    )
    assert reported >= 1  # the agent's progress, for the CLI's bar
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
    # The restores and the verify reported their progress too (the CLI's bars follow these events).
    progressed = await stack.system.pool.fetchval(
        "SELECT count(DISTINCT correlation_id) FROM bus.journal WHERE type = 'backup.progressed' "
        "AND payload->>'backup_id' = $1",
        str(full.backup_id),
    )
    assert progressed >= 4  # its backup, two restores, its verify
    await store.corrupt_a_chunk(full.backup_id)
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


async def test_a_backup_that_fails_ends_in_error_and_its_snapshot_is_usable_again(
    backup_stack: BackupStack, tmp_path: Path
) -> None:
    stack = backup_stack
    root = tmp_path / "backups"
    root.mkdir()
    repository = await stack.add_repository("fsbackup", {"path": str(root)})
    volume = await stack.create_volume(4 * MIB)
    await _write_random(stack.paths[volume], 0, MIB, tmp_path)
    snapshot_id = uuid.uuid4()
    await stack.client.send(
        CreateSnapshot(snapshot_id=snapshot_id, volume_id=volume, name="before-backup"),
        (SnapshotCreated,),
        (SnapshotCreateFailed,),
        timeout=TIMEOUT,
    )
    backup_id = uuid.uuid4()
    with faults.armed("fsbackup.backup.before_manifest"), pytest.raises(CommandFailed, match="before_manifest"):
        await stack.client.send(
            CreateBackup(backup_id=backup_id, volume_id=volume, repository_id=repository, snapshot_id=snapshot_id),
            (BackupCreated,),
            (BackupCreateFailed,),
            timeout=TIMEOUT,
        )

    async def compensated() -> bool:
        state = await stack.system.pool.fetchval(
            "SELECT state FROM snapshot.snapshots WHERE snapshot_id = $1", snapshot_id
        )
        return bool(state == "CreatedOnPrimary")

    await assert_eventually(compensated, timeout=TIMEOUT, what="the snapshot back in CreatedOnPrimary")
    row = await stack.system.pool.fetchrow("SELECT state, error FROM backup.backups WHERE backup_id = $1", backup_id)
    assert row is not None
    backup_state, error = row["state"], row["error"]
    assert backup_state == "Error"
    assert error is not None
    assert "before_manifest" in error
    assert not [path for path in (root / "backups").glob("*") if path.name.endswith(".manifest.json.gz")]

    # The failed backup stored its chunks but no manifest: a collection frees them all.
    orphans = [path for path in (root / "chunks").rglob("*") if path.is_file()]
    assert len(orphans) == MIB // (32 * 1024)
    collected = await stack.client.send(
        CollectRepositoryGarbage(repository_id=repository),
        (RepositoryGarbageCollected,),
        (RepositoryGarbageCollectFailed,),
        timeout=TIMEOUT,
    )
    assert isinstance(collected, RepositoryGarbageCollected)
    assert (collected.freed_chunks, collected.deferred) == (len(orphans), False)
    assert not [path for path in (root / "chunks").rglob("*") if path.is_file()]

    again = await stack.backup(volume, repository, snapshot_id=snapshot_id)  # nothing half-done stands in the way
    assert again.kind is BackupKind.FULL
    assert (
        await stack.system.pool.fetchval("SELECT state FROM snapshot.snapshots WHERE snapshot_id = $1", snapshot_id)
        == "BackedUp"
    )


class StoppableVm(VirtualMachine):
    """The demo's VM, which can also be powered off."""

    def power_off(self) -> None:
        assert self.domain is not None, "define the VM first"
        self.domain.destroy()


async def test_a_restore_in_place_needs_the_volumes_vm_stopped(backup_stack: BackupStack, tmp_path: Path) -> None:
    stack = backup_stack
    root = tmp_path / "backups"
    root.mkdir()
    repository = await stack.add_repository("fsbackup", {"path": str(root)})
    volume = await stack.create_volume(4 * MIB)
    await _write_random(stack.paths[volume], 0, MIB, tmp_path)
    backed_up = await stack.checksum(volume)
    backup = await stack.backup(volume, repository)
    await _write_random(stack.paths[volume], 0, MIB, tmp_path)
    changed = await stack.checksum(volume)
    vm_id = uuid.uuid4()
    vm = StoppableVm()
    try:
        vm.define(vm_id, [stack.paths[volume]])
        vm.start()
        in_place = RestoreBackup(
            restore_id=uuid.uuid4(), backup_id=backup.backup_id, volume_id=volume, in_place=True, vm_id=vm_id, host=HOST
        )
        with pytest.raises(CommandFailed, match="stop it before restoring"):
            await stack.client.send(in_place, (BackupRestored,), (BackupRestoreFailed,), timeout=TIMEOUT)
        assert await stack.checksum(volume) == changed
        vm.power_off()
        restored = await stack.client.send(
            in_place.model_copy(update={"restore_id": uuid.uuid4()}),
            (BackupRestored,),
            (BackupRestoreFailed,),
            timeout=TIMEOUT,
        )
        assert isinstance(restored, BackupRestored)
        assert await stack.checksum(volume) == backed_up
    finally:
        vm.remove()
    # the safety snapshot is gone, the volume is Ready, no saga holds a lock
    assert await stack.system.pool.fetchval("SELECT state FROM storage.volumes WHERE volume_id = $1", volume) == "Ready"

    async def unlocked() -> bool:
        held = await stack.system.pool.fetch("SELECT resource FROM sagas.locks WHERE holder IS NOT NULL")
        return not held

    await assert_eventually(unlocked, timeout=TIMEOUT, what="every saga lock released")
