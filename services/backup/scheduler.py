"""The backup scheduler: due schedules claimed from the table, never from in-process timers.

Each pass takes one due schedule with `FOR UPDATE SKIP LOCKED` (replicas share the work, none runs a schedule twice),
moves its `next_run_at` on and sends the backup command in the same transaction. The backup's id is derived from the
schedule and the run's instant, so a slot run again (after a crash, on another replica) asks for the same backup and
the saga and the service take it once. A service that was down runs each overdue schedule once, then goes on from now.
"""

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

import structlog

from bus.ports import UnitOfWorkFactory
from schemas import Envelope
from schemas.backup import CreateBackup
from services.backup.deps import BackupDeps
from services.backup.requests import PRODUCER
from services.backup.schedules import schedule_policy
from services.runtime.polling import PollingPart

log = structlog.get_logger(__name__)
CONSUMER = "backup.scheduler"


def run_backup_id(schedule_id: UUID, run_at: datetime) -> UUID:
    """The backup a schedule's run takes (the same for the same slot)."""
    return uuid5(NAMESPACE_URL, f"strata:backup-schedule:{schedule_id}:{run_at.isoformat()}")


class BackupScheduler(PollingPart):
    """Runs due backup schedules until stopped (`poll`: seconds between looks when nothing was due)."""

    name = CONSUMER

    def __init__(self, units: UnitOfWorkFactory, deps: BackupDeps, *, poll: float = 1.0) -> None:
        self.units = units
        self.deps = deps
        super().__init__(poll=poll)

    async def run_once(self) -> bool:
        return await self.run_due_schedule()

    async def run_due_schedule(self) -> bool:
        """Run one due schedule; False if none was due."""
        now = self.deps.clock()
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None  # no incoming message, so never a duplicate
            row = await uow.connection.fetchrow(
                "SELECT schedule_id, volume_id, repository_id, interval_type, schedule, timezone, max_backups, "
                "next_run_at FROM backup.schedules WHERE next_run_at <= $1 ORDER BY next_run_at LIMIT 1 "
                "FOR UPDATE SKIP LOCKED",
                now,
            )
            if row is None:
                return False
            policy = schedule_policy(row["interval_type"], row["schedule"], row["timezone"], row["max_backups"])
            run_at: datetime = row["next_run_at"]
            await uow.connection.execute(
                "UPDATE backup.schedules SET next_run_at = $2, last_run_at = $3 WHERE schedule_id = $1",
                row["schedule_id"],
                policy.next_run(max(now, run_at)),
                run_at,
            )
            backup_id = run_backup_id(row["schedule_id"], run_at)
            command = CreateBackup(
                backup_id=backup_id,
                volume_id=row["volume_id"],
                repository_id=row["repository_id"],
                schedule_id=row["schedule_id"],
            )
            uow.emit(Envelope.wrap(command, producer=PRODUCER))
            log.info("backup schedule ran", schedule_id=str(row["schedule_id"]), backup_id=str(backup_id))
        return True
