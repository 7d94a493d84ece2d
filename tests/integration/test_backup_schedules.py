"""Backup schedules with every service on RabbitMQ and PostgreSQL: several per volume, a slot never run twice (also
by a second scheduler, as after a restart), and `max_backups` retention. The scheduler is driven with its own clock.
"""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bus.codec import encode
from bus.postgres import PostgresUnitOfWorkFactory
from plugins.registry import load_plugins
from schemas.backup_schedules import BackupScheduleCreated, BackupScheduleCreateFailed, CreateBackupSchedule
from schemas.snapshot import IntervalType
from services.backup.deps import BackupDeps
from services.backup.scheduler import BackupScheduler
from services.cli.sending import CommandFailed
from services.runtime.sealing import SecretSealer
from tests.helpers import assert_eventually
from tests.integration.backup_support import MIB, TIMEOUT, BackupStack, backup_stack

pytestmark = pytest.mark.integration
__all__ = ["backup_stack"]


async def _schedule(
    stack: BackupStack, volume: uuid.UUID, repository: uuid.UUID, **fields: object
) -> BackupScheduleCreated:
    command = CreateBackupSchedule.model_validate(
        {"schedule_id": uuid.uuid4(), "volume_id": volume, "repository_id": repository, **fields}
    )
    created = await stack.client.send(command, (BackupScheduleCreated,), (BackupScheduleCreateFailed,), timeout=TIMEOUT)
    assert isinstance(created, BackupScheduleCreated)
    return created


async def test_two_schedules_on_one_volume_run_each_slot_once_and_keep_max_backups(
    backup_stack: BackupStack, tmp_path: Path, secret_key_file: Path
) -> None:
    stack = backup_stack
    root = tmp_path / "backups"
    root.mkdir()
    repository = await stack.add_repository("fsbackup", {"path": str(root)})
    volume = await stack.create_volume(4 * MIB)
    # Far from now, so that the daemon's own scheduler (on the real clock) does not run them meanwhile.
    later = datetime.now(UTC) + timedelta(hours=12)
    daily = await _schedule(
        stack, volume, repository, interval_type=IntervalType.DAILY, schedule=f"{later:%M:%H}", max_backups=1
    )
    weekly = await _schedule(
        stack,
        volume,
        repository,
        interval_type=IntervalType.WEEKLY,
        schedule="30:03:1",
        max_backups=4,
        timezone="Europe/Paris",
    )
    rows = await stack.system.pool.fetch("SELECT schedule_id FROM backup.schedules WHERE volume_id = $1", volume)
    assert {row["schedule_id"] for row in rows} == {daily.schedule_id, weekly.schedule_id}  # CloudStack #9344
    with pytest.raises(CommandFailed, match="schedule"):
        await _schedule(stack, volume, repository, interval_type=IntervalType.WEEKLY, schedule="30:03:8", max_backups=1)

    clock = [daily.next_run_at + timedelta(seconds=1)]
    deps = BackupDeps(plugins=load_plugins(), sealer=SecretSealer.from_file(secret_key_file), clock=lambda: clock[0])
    units = PostgresUnitOfWorkFactory(stack.system.pool, encode=encode)
    first, second = BackupScheduler(units, deps), BackupScheduler(units, deps)  # two replicas, or one restarted

    async def backed_up(count: int) -> bool:
        found = await stack.system.pool.fetchval(
            "SELECT count(*) FROM backup.backups WHERE schedule_id = $1 AND state = 'BackedUp'", daily.schedule_id
        )
        return bool(found == count)

    assert await first.run_due_schedule()
    assert not await second.run_due_schedule()  # the slot is taken: never run twice
    assert not await first.run_due_schedule()
    await assert_eventually(lambda: backed_up(1), timeout=TIMEOUT, what="the daily slot's backup")
    first_backup = await stack.system.pool.fetchval(
        "SELECT backup_id FROM backup.backups WHERE schedule_id = $1", daily.schedule_id
    )

    clock[0] += timedelta(days=1)
    assert await second.run_due_schedule()
    await assert_eventually(lambda: backed_up(1), timeout=TIMEOUT, what="the next slot's backup")

    async def pruned() -> bool:
        state = await stack.system.pool.fetchval("SELECT state FROM backup.backups WHERE backup_id = $1", first_backup)
        return bool(state == "Removed")

    await assert_eventually(pruned, timeout=TIMEOUT, what="max_backups=1 removing the older backup")
    assert (
        await stack.system.pool.fetchval(
            "SELECT count(*) FROM backup.backups WHERE schedule_id = $1", weekly.schedule_id
        )
        == 0
    )


async def test_keep_rules_keep_what_max_backups_alone_would_remove(
    backup_stack: BackupStack, tmp_path: Path, secret_key_file: Path
) -> None:
    stack = backup_stack
    root = tmp_path / "backups"
    root.mkdir()
    repository = await stack.add_repository("fsbackup", {"path": str(root)})
    volume = await stack.create_volume(4 * MIB)
    later = datetime.now(UTC) + timedelta(hours=12)
    daily = await _schedule(
        stack,
        volume,
        repository,
        interval_type=IntervalType.DAILY,
        schedule=f"{later:%M:%H}",
        max_backups=1,
        keep={"last": 2},
    )
    assert daily.keep is not None
    assert daily.keep.last == 2
    clock = [daily.next_run_at + timedelta(seconds=1)]
    deps = BackupDeps(plugins=load_plugins(), sealer=SecretSealer.from_file(secret_key_file), clock=lambda: clock[0])
    scheduler = BackupScheduler(PostgresUnitOfWorkFactory(stack.system.pool, encode=encode), deps)

    async def states() -> list[str]:
        rows = await stack.system.pool.fetch(
            "SELECT state FROM backup.backups WHERE schedule_id = $1 ORDER BY created_at", daily.schedule_id
        )
        return [row["state"] for row in rows]

    for run, expected in enumerate((["BackedUp"], ["BackedUp", "BackedUp"], ["Removed", "BackedUp", "BackedUp"])):
        assert await scheduler.run_due_schedule()

        async def settled(wanted: list[str] = expected) -> bool:
            return await states() == wanted

        await assert_eventually(settled, timeout=TIMEOUT, what=f"run {run + 1}: {expected}")
        clock[0] += timedelta(days=1)
