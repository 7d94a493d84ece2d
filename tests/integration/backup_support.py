"""Every service in this test's process on RabbitMQ and PostgreSQL, the backup service with them, and a client.

A qcow2fs pool in the test's directory, volumes written like a guest writes (qemu-io), and the commands a user
sends to back them up and restore them.
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from schemas.backup import (
    AddBackupRepository,
    BackupCreated,
    BackupCreateFailed,
    BackupRepositoryAdded,
    BackupRepositoryAddFailed,
    BackupVerified,
    BackupVerifyFailed,
    CreateBackup,
    VerifyBackup,
)
from schemas.backup_restores import BackupRestored, BackupRestoreFailed, RestoreBackup
from schemas.storage import (
    AddPool,
    CreateVolume,
    PoolAdded,
    PoolAddFailed,
    PoolScope,
    VolumeCreated,
    VolumeCreateFailed,
)
from services.agent.settings import AgentSettings
from services.cli.sending import Client
from services.demo_data import checksum
from services.runtime.daemon import Settings
from services.stack import System

HOST, CLUSTER = "backup-host", "backup-cluster"
MIB = 1024 * 1024
TIMEOUT = 60.0  # an upper bound on a loaded machine, not an expected duration


@dataclass
class BackupStack:
    """The running services, a client, and what the test made."""

    system: System
    client: Client
    workdir: Path
    zone_id: uuid.UUID = field(default_factory=uuid.uuid4)
    pool_id: uuid.UUID = field(default_factory=uuid.uuid4)
    paths: dict[uuid.UUID, Path] = field(default_factory=dict)

    async def add_pool(self) -> None:
        pool_dir = self.workdir / "pool"
        pool_dir.mkdir()
        await self.client.send(
            AddPool(
                pool_id=self.pool_id,
                name="backup-pool",
                plugin="qcow2fs",
                config={"path": str(pool_dir)},
                scope=PoolScope.HOST,
                zone_id=self.zone_id,
                cluster_id=CLUSTER,
                host=HOST,
                hypervisors=frozenset({"kvm"}),
            ),
            (PoolAdded,),
            (PoolAddFailed,),
            timeout=TIMEOUT,
        )

    async def add_repository(self, plugin: str, config: dict[str, object]) -> uuid.UUID:
        repository_id = uuid.uuid4()
        await self.client.send(
            AddBackupRepository(
                repository_id=repository_id,
                name=f"repo-{repository_id.hex[:8]}",
                plugin=plugin,
                config=config,
                zone_id=self.zone_id,
            ),
            (BackupRepositoryAdded,),
            (BackupRepositoryAddFailed,),
            timeout=TIMEOUT,
        )
        return repository_id

    async def create_volume(self, size: int) -> uuid.UUID:
        volume_id = uuid.uuid4()
        created = await self.client.send(
            CreateVolume(
                volume_id=volume_id,
                name=f"vol-{volume_id.hex[:8]}",
                size_bytes=size,
                zone_id=self.zone_id,
                host=HOST,
                cluster_id=CLUSTER,
            ),
            (VolumeCreated,),
            (VolumeCreateFailed,),
            timeout=TIMEOUT,
        )
        assert isinstance(created, VolumeCreated)
        self.paths[volume_id] = self.workdir / "pool" / "volumes" / str(volume_id) / "active.qcow2"
        return volume_id

    async def checksum(self, volume_id: uuid.UUID) -> str:
        return await checksum(self.paths[volume_id], self.workdir)

    async def checksum_of_restored(self, volume_id: str) -> str:
        """The sha256 of a volume a restore made (found by its id in the pool)."""
        return await checksum(self.workdir / "pool" / "volumes" / volume_id / "active.qcow2", self.workdir)

    async def backup(
        self, volume_id: uuid.UUID, repository_id: uuid.UUID, *, snapshot_id: uuid.UUID | None = None
    ) -> BackupCreated:
        command = CreateBackup(
            backup_id=uuid.uuid4(), volume_id=volume_id, repository_id=repository_id, snapshot_id=snapshot_id
        )
        created = await self.client.send(command, (BackupCreated,), (BackupCreateFailed,), timeout=TIMEOUT)
        assert isinstance(created, BackupCreated)
        return created

    async def restore(self, backup_id: uuid.UUID, volume_id: uuid.UUID | None = None) -> uuid.UUID:
        """Restore to a new volume, or with `volume_id` in place; return the volume restored."""
        target = volume_id or uuid.uuid4()
        command = RestoreBackup(
            restore_id=uuid.uuid4(),
            backup_id=backup_id,
            volume_id=target,
            in_place=volume_id is not None,
            name=None if volume_id else f"restored-{target.hex[:8]}",
            zone_id=None if volume_id else self.zone_id,
            pool_id=None if volume_id else self.pool_id,
            host=HOST,
            cluster_id=CLUSTER,
        )
        restored = await self.client.send(command, (BackupRestored,), (BackupRestoreFailed,), timeout=TIMEOUT)
        assert isinstance(restored, BackupRestored)
        self.paths[target] = self.workdir / "pool" / "volumes" / str(target) / "active.qcow2"
        return target

    async def verify(self, backup_id: uuid.UUID) -> BackupVerified:
        verified = await self.client.send(
            VerifyBackup(backup_id=backup_id), (BackupVerified,), (BackupVerifyFailed,), timeout=TIMEOUT
        )
        assert isinstance(verified, BackupVerified)
        return verified


@pytest.fixture
async def backup_stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[BackupStack]:
    """Every declared daemon (storage, snapshot, backup, orchestrator, an agent), with a qcow2fs pool added."""
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="backup-test")
    system = await System.start(
        database_url, transport, settings=Settings(AgentSettings(host=HOST, cluster=CLUSTER)), relay_poll=0.1
    )
    client = Client(transport, owns_transport=False)
    await client.__aenter__()
    stack = BackupStack(system, client, tmp_path)
    try:
        await stack.add_pool()
        yield stack
    finally:
        await client.__aexit__(None, None, None)
        await system.stop()
        await transport.delete_namespace()
