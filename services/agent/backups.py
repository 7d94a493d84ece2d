"""The agent's backup commands: take a snapshot's backup, restore one over a volume, delete and verify backups.

A repository's plugin is opened for each command from the configuration the command carries (the backup service
keeps it sealed) and closed after it. Bytes go from the pool's files to the repository directly (a block map read
in place), and back straight into the places of the volume's new content where the pool's plugin lays one out
(`ContentWriter`) and the repository's can fill it (`PlacedRestorer`), else through a staging file that the pool's
plugin copies in; either way the volume's bytes are checked against the backup's hashes once they are its own.
"""

import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from uuid import UUID

from bus.ports import UnitOfWork
from plugins.registry import validate_config
from plugins.sdk.protocols import BlockBackupTarget, BlockMapProvider, ContentWriter, PlacedRestorer
from plugins.sdk.types import VolumeFormat
from schemas import Envelope, Event
from schemas.backup import BackupProgressed
from schemas.backup_agent import (
    BackupDeletedOnStore,
    BackupDeleteOnStoreFailed,
    BackupRestoredOnPool,
    BackupRestoreOnPoolFailed,
    BackupSnapshotOnPool,
    BackupVerifiedOnStore,
    BackupVerifyOnStoreFailed,
    CollectGarbageOnStore,
    DeleteBackupOnStore,
    GarbageCollectedOnStore,
    GarbageCollectOnStoreFailed,
    RepositoryCommand,
    RestoreBackupOnPool,
    SnapshotBackedUpOnPool,
    SnapshotBackupOnPoolFailed,
    VerifyBackupOnStore,
)
from schemas.errors import InvalidArgument, Unimplemented
from services.agent.answering import Agent, volume_resource
from services.agent.progress import progress_events


@contextlib.asynccontextmanager
async def repository(agent: Agent, command: RepositoryCommand) -> AsyncIterator[BlockBackupTarget]:
    """The repository's plugin, opened with the command's configuration and closed afterwards."""
    plugin = agent.drivers.plugins.get(command.plugin)
    driver = plugin.open(validate_config(plugin, command.config))
    try:
        if not isinstance(driver, BlockBackupTarget):
            raise InvalidArgument(f"plugin {command.plugin!r} is not a backup target that reads block maps")
        yield driver
    finally:
        await driver.close()


async def _block_maps(agent: Agent, uow: UnitOfWork, pool_id: UUID) -> BlockMapProvider:
    driver = await agent.drivers.driver(uow.connection, pool_id)
    if not isinstance(driver, BlockMapProvider):
        raise Unimplemented(f"the plugin of pool {pool_id} cannot say where a snapshot's blocks lie")
    return driver


def _progressed(backup_id: UUID) -> Callable[[int, int], Event]:
    """How far the backup's read, restore or verify has come, as the event the CLI's bar follows."""

    def progressed(done: int, total: int) -> Event:
        return BackupProgressed(backup_id=backup_id, done_bytes=done, total_bytes=total)

    return progressed


async def backup_snapshot(command: BackupSnapshotOnPool, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Back the snapshot up; against the parent, read only what changed since its snapshot where the pool can tell."""

    async def work() -> Event:
        primary = await _block_maps(agent, uow, command.pool_id)
        since = str(command.since_snapshot_id) if command.since_snapshot_id else None
        blocks = await primary.block_map(str(command.volume_id), str(command.snapshot_id), since_snapshot_id=since)

        async with (
            repository(agent, command) as target,
            progress_events(agent.units, envelope, _progressed(command.backup_id), producer=agent.producer) as report,
        ):
            report(0, blocks.size_bytes)
            taken = await target.backup_blocks(
                str(command.backup_id),
                str(command.volume_id),
                blocks,
                parent_id=str(command.parent_backup_id) if command.parent_backup_id else None,
                progress=report,
            )
        return SnapshotBackedUpOnPool(
            backup_id=command.backup_id,
            size_bytes=taken.ref.size_bytes,
            bytes_read=taken.bytes_read,
            bytes_written=taken.bytes_written,
            bytes_reused=taken.bytes_reused,
            changed_blocks=taken.changed_blocks,
            note=taken.note,
        )

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: SnapshotBackupOnPoolFailed(backup_id=command.backup_id, error=error),
        resources=[volume_resource(command.volume_id)],
    )


async def restore_backup(command: RestoreBackupOnPool, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Write the backup over the volume in one switch, then check the volume's bytes against the backup's hashes."""

    async def work() -> Event:
        primary = await _block_maps(agent, uow, command.pool_id)
        async with (
            repository(agent, command) as target,
            progress_events(agent.units, envelope, _progressed(command.backup_id), producer=agent.producer) as report,
        ):
            if isinstance(primary, ContentWriter) and isinstance(target, PlacedRestorer):
                # Straight into the volume's new content: each byte written once, no staging file.
                content = partial(primary.new_content, str(command.volume_id))
                await target.restore_into(str(command.backup_id), content, progress=report)
            else:
                with tempfile.TemporaryDirectory(prefix="strata-restore-") as staging:
                    raw = Path(staging) / "restore.raw"
                    await target.restore(str(command.backup_id), raw, progress=report)
                    await primary.replace_content(str(command.volume_id), raw, source_format=VolumeFormat.RAW)
            written = await primary.block_map(str(command.volume_id))
            checked = await target.check_blocks(str(command.backup_id), written)
        return BackupRestoredOnPool(
            backup_id=command.backup_id,
            volume_id=command.volume_id,
            bytes_written=written.data_bytes(),
            chunks_checked=checked,
        )

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: BackupRestoreOnPoolFailed(backup_id=command.backup_id, volume_id=command.volume_id, error=error),
        resources=[volume_resource(command.volume_id)],
    )


async def delete_backup(command: DeleteBackupOnStore, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Delete the backup from the repository; one already gone counts as deleted."""

    async def work() -> Event:
        async with repository(agent, command) as target:
            await target.delete_backup(str(command.backup_id))
        return BackupDeletedOnStore(backup_id=command.backup_id)

    await agent.run(
        uow, envelope, work, lambda error: BackupDeleteOnStoreFailed(backup_id=command.backup_id, error=error)
    )


async def verify_backup(command: VerifyBackupOnStore, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Read every chunk of the backup back and check its hash."""

    async def work() -> Event:
        async with (
            repository(agent, command) as target,
            progress_events(agent.units, envelope, _progressed(command.backup_id), producer=agent.producer) as bar,
        ):
            report = await target.verify_backup(str(command.backup_id), progress=bar)
        return BackupVerifiedOnStore(
            backup_id=command.backup_id, chunks=report.chunks, bytes_checked=report.bytes_checked, bad=report.bad
        )

    await agent.run(
        uow, envelope, work, lambda error: BackupVerifyOnStoreFailed(backup_id=command.backup_id, error=error)
    )


async def collect_garbage(command: CollectGarbageOnStore, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Free the repository's unreferenced chunks (deferred while a backup is being written)."""

    async def work() -> Event:
        async with repository(agent, command) as target:
            report = await target.collect_garbage()
        return GarbageCollectedOnStore(
            repository_id=command.repository_id,
            freed_chunks=report.freed_chunks,
            freed_bytes=report.freed_bytes,
            deferred=report.deferred,
        )

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: GarbageCollectOnStoreFailed(repository_id=command.repository_id, error=error),
    )
