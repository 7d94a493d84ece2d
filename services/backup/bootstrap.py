"""The backup daemon, declared (`DAEMON`): the only place that builds the backup service's adapters.

`build_backup` wires it on a given transport and units of work (tests run it so); the runner builds it from the
process's wiring for `strata run backup`, `strata up` and the demo.
"""

from typing import Any

from bus.ports import QueueKind, Transport, UnitOfWorkFactory
from bus.runtime import Consumer
from services.backup.deps import BackupDeps
from services.backup.handlers import COMMAND_HANDLERS, EVENT_HANDLERS
from services.backup.maintenance import RepositoryMaintenance
from services.backup.scheduler import BackupScheduler
from services.backup.settings import BackupSettings
from services.runtime.daemon import Daemon, Queue, Service, Settings, Wiring
from services.runtime.handlers import bind_context
from services.runtime.migrations import migrate_service
from services.runtime.sealing import SecretSealer

CONSUMER = "backup"
SCHEMA = "backup"
HANDLERS = {**COMMAND_HANDLERS, **EVENT_HANDLERS}
SCHEDULER_POLL = 1.0  # seconds between looks for due schedules when none was due


def build_backup(
    transport: Transport,
    units: UnitOfWorkFactory,
    deps: BackupDeps,
    *,
    prefetch: int = 16,
    queue_kind: QueueKind = QueueKind.QUORUM,
    scheduler_poll: float = SCHEDULER_POLL,
    maintenance: BackupSettings | None = None,
) -> Service:
    """Wire the service on `transport` and `units` (it keeps its state in PostgreSQL): its consumer on
    `<ns>.backup`, then its schedule runner."""
    consumer = Consumer(
        transport, units, name=CONSUMER, handlers=bind_context(HANDLERS, deps), prefetch=prefetch, queue_kind=queue_kind
    )
    jobs = maintenance or BackupSettings()
    repository_jobs = RepositoryMaintenance(
        units, deps, gc_interval=jobs.gc_interval_seconds, verify_interval=jobs.verify_interval_seconds
    )
    return Service([consumer, BackupScheduler(units, deps, poll=scheduler_poll), repository_jobs])


async def migrate_backup(connection: Any) -> list[int]:  # an asyncpg connection outside any transaction
    """Apply the backup service's migrations not yet applied (schema `backup`); return the versions applied."""
    return await migrate_service(connection, SCHEMA, "services.backup.migrations")


def check(settings: Settings) -> None:
    """Before connecting: read the deployment key that seals the repositories' configurations."""
    SecretSealer.from_file(settings.runtime.secret_key_file)


def build(wiring: Wiring) -> Service:
    """The backup service on the process's wiring (`backup.full.every` from STRATA_BACKUP_FULL_EVERY, the
    maintenance jobs' periods from STRATA_BACKUP_GC_INTERVAL_SECONDS and STRATA_BACKUP_VERIFY_INTERVAL_SECONDS)."""
    settings = wiring.settings.get(BackupSettings)
    deps = BackupDeps(
        plugins=wiring.plugins,
        sealer=SecretSealer.from_file(wiring.settings.runtime.secret_key_file),
        full_every=settings.full_every,
    )
    return build_backup(
        wiring.transport, wiring.units, deps, queue_kind=wiring.settings.bus.queue_kind, maintenance=settings
    )


DAEMON = Daemon(
    name="backup",
    summary="backup repositories, backups (changed blocks only), schedules, restores and verifies",
    build=build,
    migrations=(migrate_backup,),
    queues=(Queue(CONSUMER, tuple(HANDLERS)),),
    check=check,
)
