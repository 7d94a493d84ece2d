"""Backups with every daemon a process of its own (the backup service among them) on the real servers: a full backup
of a volume with data, a change, an incremental, restores of both to new volumes compared with the volume at each
point; then the same with a fault at each step in turn: the plugin failing before its manifest, the agent SIGKILLed
there and restarted, the backup service SIGKILLed mid-backup and restarted. Every run ends with a consistent backup
or none, no snapshot left in BackingUp, no saga lock held; a collection then leaves no chunk that no backup names.
"""

import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest
import pytest_asyncio

from plugins.chunked.codec import chunk_key
from plugins.fsbackup import FsBackupConfig
from plugins.fsbackup.driver import open_driver
from sagas.work import saga_id_for
from schemas.backup import AddBackupRepository, CollectRepositoryGarbage, CreateBackup
from schemas.backup_restores import RestoreBackup
from schemas.storage import CreateVolume
from tests.e2e.cloud_support import KillableDaemon, add_pool, holds_mib, open_cloud, write_mib
from tests.e2e.revert_vm_support import CLUSTER, HOST, Cloud

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
MIB = 1 << 20
BEFORE_MANIFEST = "fsbackup.backup.before_manifest"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cloud(postgres_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cloud]:
    async with open_cloud(postgres_url, amqp_url, tmp_path_factory.mktemp("backup"), more=("backup",)) as opened:
        await add_pool(opened, opened.pool_id, opened.pool_dir)
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def repository(cloud: Cloud) -> tuple[UUID, Path]:
    store = cloud.pool_dir.parent / "store"
    store.mkdir()
    repository_id = uuid.uuid4()
    await cloud.publish(
        AddBackupRepository(
            repository_id=repository_id,
            name="e2e",
            plugin="fsbackup",
            config={"path": str(store)},
            zone_id=cloud.zone_id,
        )
    )
    await cloud.wait(
        lambda: cloud.value("SELECT count(*) FROM backup.repositories WHERE repository_id = $1", repository_id),
        "the repository",
    )
    return repository_id, store


async def new_volume(cloud: Cloud) -> tuple[UUID, str]:
    volume_id = uuid.uuid4()
    await cloud.publish(
        CreateVolume(
            volume_id=volume_id,
            name=f"b-{volume_id.hex[:6]}",
            size_bytes=16 * MIB,
            zone_id=cloud.zone_id,
            pool_id=cloud.pool_id,
            host=HOST,
            cluster_id=CLUSTER,
        )
    )

    async def ready() -> bool:
        state = await cloud.value("SELECT state FROM storage.volumes WHERE volume_id = $1", volume_id)
        known = await cloud.value("SELECT count(*) FROM backup.volumes WHERE volume_id = $1", volume_id)
        return state == "Ready" and known == 1

    await cloud.wait(ready, "the volume Ready and known to the backup service", timeout=60)
    return volume_id, str(await cloud.value("SELECT locator FROM storage.volumes WHERE volume_id = $1", volume_id))


async def saga_ended(cloud: Cloud, envelope_id: UUID, what: str) -> str:
    saga_id = saga_id_for(envelope_id)

    async def ended() -> object:
        status = await cloud.value("SELECT status FROM sagas.instances WHERE saga_id = $1", saga_id)
        return status if status in ("COMPLETED", "COMPENSATED", "FAILED", "STUCK") else None

    await cloud.wait(ended, what, timeout=120)
    return str(await ended())


async def back_up(cloud: Cloud, volume_id: UUID, repository_id: UUID) -> tuple[UUID, str]:
    """Back the volume up; return the backup's id and how its saga ended."""
    backup_id = uuid.uuid4()
    envelope = await cloud.publish(CreateBackup(backup_id=backup_id, volume_id=volume_id, repository_id=repository_id))
    return backup_id, await saga_ended(cloud, envelope.message_id, f"the backup saga of {backup_id}")


async def restore(cloud: Cloud, backup_id: UUID) -> str:
    """Restore to a new volume; return its path."""
    volume_id = uuid.uuid4()
    envelope = await cloud.publish(
        RestoreBackup(
            restore_id=uuid.uuid4(),
            backup_id=backup_id,
            volume_id=volume_id,
            name=f"r-{volume_id.hex[:6]}",
            zone_id=cloud.zone_id,
            pool_id=cloud.pool_id,
            host=HOST,
            cluster_id=CLUSTER,
        )
    )
    assert await saga_ended(cloud, envelope.message_id, "the restore saga") == "COMPLETED"
    return str(await cloud.value("SELECT locator FROM storage.volumes WHERE volume_id = $1", volume_id))


async def back_up_with_the_agent_killed(cloud: Cloud, volume_id: UUID, repository_id: UUID, point: str) -> UUID:
    """Back the volume up with the agent started to SIGKILL itself at the fault point `point`, restart it once it
    is dead, and check the backup ends BackedUp all the same; the backup's id."""
    agent = cloud.daemons["agent"]
    assert isinstance(agent, KillableDaemon)
    agent.stop()
    agent.start_killed_at(point)
    backup_id = uuid.uuid4()
    envelope = await cloud.publish(CreateBackup(backup_id=backup_id, volume_id=volume_id, repository_id=repository_id))

    async def dead() -> bool:
        return not agent.alive

    await cloud.wait(dead, f"the agent killed itself at {point}", timeout=60)
    agent.start()
    assert await saga_ended(cloud, envelope.message_id, "the backup after the agent's restart") == "COMPLETED"
    assert await cloud.value("SELECT state FROM backup.backups WHERE backup_id = $1", backup_id) == "BackedUp"
    return backup_id


async def consistent(cloud: Cloud) -> None:
    """No snapshot in BackingUp, no backup in BackingUp or Restoring, no saga lock held."""
    assert await cloud.value("SELECT count(*) FROM snapshot.snapshots WHERE state = 'BackingUp'") == 0
    assert await cloud.value("SELECT count(*) FROM backup.backups WHERE state IN ('BackingUp', 'Restoring')") == 0

    async def unlocked() -> bool:
        return await cloud.value("SELECT count(*) FROM sagas.locks WHERE holder IS NOT NULL") == 0

    await cloud.wait(unlocked, "every saga lock released (an ended saga releases them just after)")


async def test_backups_and_restores_of_a_changing_volume(cloud: Cloud, repository: tuple[UUID, Path]) -> None:
    repository_id, _ = repository
    volume_id, path = await new_volume(cloud)
    for mib in range(4):
        await write_mib(path, 0x11 + mib, 1, offset_mib=mib)
    full, ended = await back_up(cloud, volume_id, repository_id)
    assert ended == "COMPLETED"
    await write_mib(path, 0x99, 1, offset_mib=8)  # a change after the full backup
    incremental, ended = await back_up(cloud, volume_id, repository_id)
    assert ended == "COMPLETED"
    assert await cloud.value("SELECT kind FROM backup.backups WHERE backup_id = $1", incremental) == "incremental"

    first, second = await restore(cloud, full), await restore(cloud, incremental)
    for mib in range(4):
        assert await holds_mib(first, 0x11 + mib, 1, offset_mib=mib)
        assert await holds_mib(second, 0x11 + mib, 1, offset_mib=mib)
    assert await holds_mib(first, 0x00, 1, offset_mib=8)
    assert await holds_mib(second, 0x99, 1, offset_mib=8)
    await consistent(cloud)
    cloud.assert_alive()


async def test_a_plugin_failing_before_its_manifest_leaves_an_error_and_a_usable_snapshot(
    cloud: Cloud, repository: tuple[UUID, Path]
) -> None:
    repository_id, _ = repository
    volume_id, path = await new_volume(cloud)
    await write_mib(path, 0x21, 2)
    cloud.restart_agent(faults=(BEFORE_MANIFEST,))
    backup_id, ended = await back_up(cloud, volume_id, repository_id)
    assert ended == "COMPENSATED"
    row = await cloud.rows("SELECT state, error FROM backup.backups WHERE backup_id = $1", backup_id)
    assert row[0]["state"] == "Error"
    assert BEFORE_MANIFEST in row[0]["error"]
    await consistent(cloud)
    _, ended = await back_up(cloud, volume_id, repository_id)  # the fault fired once
    assert ended == "COMPLETED"
    cloud.assert_alive()


async def test_the_agent_killed_before_the_manifest_finishes_the_backup_after_a_restart(
    cloud: Cloud, repository: tuple[UUID, Path]
) -> None:
    repository_id, _ = repository
    volume_id, path = await new_volume(cloud)
    await write_mib(path, 0x31, 2)
    backup_id = await back_up_with_the_agent_killed(cloud, volume_id, repository_id, BEFORE_MANIFEST)
    assert await holds_mib(await restore(cloud, backup_id), 0x31, 2)
    await consistent(cloud)


async def test_the_backup_service_killed_mid_backup_finishes_it_after_a_restart(
    cloud: Cloud, repository: tuple[UUID, Path]
) -> None:
    repository_id, _ = repository
    volume_id, path = await new_volume(cloud)
    await write_mib(path, 0x41, 2)
    service = cloud.daemons["backup"]
    backup_id = uuid.uuid4()
    envelope = await cloud.publish(CreateBackup(backup_id=backup_id, volume_id=volume_id, repository_id=repository_id))

    async def taking() -> object:
        return await cloud.value("SELECT count(*) FROM backup.backups WHERE backup_id = $1", backup_id)

    await cloud.wait(taking, "the backup recorded", timeout=60)
    service.kill()
    service.start()
    assert await saga_ended(cloud, envelope.message_id, "the backup after the service's restart") == "COMPLETED"
    assert await cloud.value("SELECT state FROM backup.backups WHERE backup_id = $1", backup_id) == "BackedUp"
    await consistent(cloud)


async def test_a_collection_leaves_only_chunks_some_backup_names(cloud: Cloud, repository: tuple[UUID, Path]) -> None:
    repository_id, store = repository
    marker_dir = store / "locks" / "backup"
    for marker in marker_dir.glob("*") if marker_dir.exists() else ():
        marker.unlink()  # the killed agent's marker holds off collections for its lease; it is dead for sure here
    envelope = await cloud.publish(CollectRepositoryGarbage(repository_id=repository_id))

    async def collected() -> object:
        return await cloud.value(
            "SELECT count(*) FROM bus.journal WHERE type = 'backup_repository.garbage_collected' "
            "AND correlation_id = $1",
            envelope.correlation_id,
        )

    await cloud.wait(collected, "the collection", timeout=60)
    driver = open_driver(FsBackupConfig(path=str(store)))
    named: set[str] = set()
    for ref in await driver.list_backups():
        named |= {chunk_key(digest) for digest in (await driver.backups.manifest(ref.backup_id)).digests()}
    stored = {path.relative_to(store).as_posix() for path in (store / "chunks").rglob("*") if path.is_file()}
    assert stored == named
    assert hashlib.sha256(b"").hexdigest() not in stored
