"""Repository maintenance as jobs: garbage collection of each repository and verification of each backup, on a
period (`STRATA_BACKUP_GC_INTERVAL_SECONDS`, `STRATA_BACKUP_VERIFY_INTERVAL_SECONDS`), as Proxmox Backup Server
schedules its GC and verify jobs. Like the backup scheduler, due work is claimed from the tables (`FOR UPDATE SKIP
LOCKED`: replicas share it, none asks twice) and asked for with the service's own commands, so a job's outcome is
what an operator's `strata backup verify` or `strata backup-repo collect-garbage` gives: events, the backup marked
bad by a failed verify, refused for restores.
"""

from datetime import timedelta

import structlog

from bus.ports import UnitOfWorkFactory
from schemas import Envelope
from schemas.backup import CollectRepositoryGarbage, VerifyBackup
from services.backup.deps import BackupDeps
from services.backup.requests import PRODUCER
from services.runtime.polling import PollingPart

log = structlog.get_logger(__name__)
CONSUMER = "backup.maintenance"


class RepositoryMaintenance(PollingPart):
    name = CONSUMER

    """Asks for due collections and verifications until stopped (`poll`: seconds between looks when none was due)."""

    def __init__(
        self,
        units: UnitOfWorkFactory,
        deps: BackupDeps,
        *,
        gc_interval: float,
        verify_interval: float,
        poll: float = 5.0,
    ) -> None:
        self.units = units
        self.deps = deps
        self.gc_interval = gc_interval
        self.verify_interval = verify_interval
        super().__init__(poll=poll)

    def wanted(self) -> bool:
        """Nothing to do when both periods are 0."""
        return bool(self.gc_interval or self.verify_interval)

    async def run_once(self) -> bool:
        return await self.ask_due_collection() | await self.ask_due_verify()

    async def ask_due_collection(self) -> bool:
        """Ask for one due repository's garbage collection; False if none was due."""
        if not self.gc_interval:
            return False
        now = self.deps.clock()
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None  # no incoming message, so never a duplicate
            # A new repository's first collection is one interval after it was added.
            repository_id = await uow.connection.fetchval(
                "SELECT repository_id FROM backup.repositories WHERE COALESCE(next_gc_at, created_at + $2) <= $1 "
                "ORDER BY COALESCE(next_gc_at, created_at + $2) LIMIT 1 FOR UPDATE SKIP LOCKED",
                now,
                timedelta(seconds=self.gc_interval),
            )
            if repository_id is None:
                return False
            await uow.connection.execute(
                "UPDATE backup.repositories SET next_gc_at = $2 WHERE repository_id = $1",
                repository_id,
                now + timedelta(seconds=self.gc_interval),
            )
            uow.emit(Envelope.wrap(CollectRepositoryGarbage(repository_id=repository_id), producer=PRODUCER))
        log.info("garbage collection asked for", repository_id=str(repository_id))
        return True

    async def ask_due_verify(self) -> bool:
        """Ask for the verification of the backup checked longest ago (a new one counts from when it was taken);
        False if none was due."""
        if not self.verify_interval:
            return False
        now = self.deps.clock()
        since = now - timedelta(seconds=self.verify_interval)
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            backup_id = await uow.connection.fetchval(
                "SELECT backup_id FROM backup.backups WHERE state = 'BackedUp' "
                "AND COALESCE(verified_at, created_at) <= $1 "
                "AND (verify_requested_at IS NULL OR verify_requested_at <= $1) "
                "ORDER BY COALESCE(verified_at, created_at) LIMIT 1 FOR UPDATE SKIP LOCKED",
                since,
            )
            if backup_id is None:
                return False
            await uow.connection.execute(
                "UPDATE backup.backups SET verify_requested_at = $2 WHERE backup_id = $1", backup_id, now
            )
            uow.emit(Envelope.wrap(VerifyBackup(backup_id=backup_id), producer=PRODUCER))
        log.info("backup verify asked for", backup_id=str(backup_id))
        return True
