"""The snapshot daemon: the only place that builds its adapters.

`SnapshotService.build(...)` runs the service on a given transport and units of work (for `strata up`, the demo
and tests, several services in one process); `run(settings)` is `strata run snapshot`: it opens the database
pool, RabbitMQ and the outbox relay itself, migrates, and runs until SIGINT or SIGTERM.
"""

import asyncio
import signal
from dataclasses import dataclass

import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bus.codec import encode
from bus.ports import QueueKind, Transport, UnitOfWorkFactory
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, create_pool, migrate
from bus.postgres.pool import Pool
from bus.rabbit import RabbitTransport
from bus.runtime import Consumer
from bus.settings import BusSettings
from plugins.registry import Registry, load_plugins
from plugins.sdk.capabilities import Capability
from schemas.errors import NotFound
from services.snapshot.deps import DEFAULT_DELTA_MAX, SnapshotDeps
from services.snapshot.migrate import migrate_snapshot
from services.snapshot.scheduler import PolicyScheduler
from services.snapshot.service import consumer

log = structlog.get_logger(__name__)


class SnapshotSettings(BaseSettings):
    """The snapshot daemon's settings (`STRATA_*`)."""

    model_config = SettingsConfigDict(env_prefix="STRATA_", frozen=True, extra="ignore")

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/strata", description="PostgreSQL URL (may hold a secret)."
    )
    snapshot_delta_max: int = Field(
        default=DEFAULT_DELTA_MAX, ge=0, description="CloudStack's `snapshot.delta.max`: deltas between fulls."
    )
    snapshot_scheduler_poll: float = Field(
        default=1.0, gt=0, description="Seconds between looks for due snapshot policies."
    )


def delta_support(plugins: Registry) -> "DeltaSupport":
    """Whether each plugin claims delta snapshots in its manifest (an unknown plugin: full snapshots only)."""
    return DeltaSupport(plugins)


@dataclass(frozen=True)
class DeltaSupport:
    """Answers `supports_delta(plugin_name)` from the installed plugins' manifests."""

    plugins: Registry

    def __call__(self, plugin: str) -> bool:
        try:
            return Capability.DELTA_SNAPSHOT in self.plugins.get(plugin).manifest.capabilities
        except NotFound:
            return False


@dataclass
class SnapshotService:
    """The service's consumer and policy scheduler, started and stopped together."""

    consumer: Consumer
    scheduler: PolicyScheduler

    @classmethod
    def build(
        cls,
        transport: Transport,
        units: UnitOfWorkFactory,
        *,
        deps: SnapshotDeps | None = None,
        scheduler_poll: float = 1.0,
        queue_kind: QueueKind = QueueKind.QUORUM,
    ) -> "SnapshotService":
        """Wire the service on `transport` and `units` (PostgreSQL units of work: it keeps its state there)."""
        deps = deps or SnapshotDeps(supports_delta=delta_support(load_plugins()))
        return cls(
            consumer(transport, units, deps, queue_kind=queue_kind),
            PolicyScheduler(units, deps, poll=scheduler_poll),
        )

    async def start(self) -> None:
        """Declare the queue, consume, and run the scheduler."""
        await self.consumer.start()
        await self.scheduler.start()

    async def stop(self) -> None:
        """Stop taking work; what is in flight finishes or is rolled back and redelivered."""
        await self.scheduler.stop()
        await self.consumer.stop()


async def prepare_database(pool: Pool) -> None:
    """Create or upgrade the bus tables and schema `snapshot`."""
    async with pool.acquire() as connection:
        await migrate(connection)
        await migrate_snapshot(connection)


async def run(settings: SnapshotSettings | None = None, bus_settings: BusSettings | None = None) -> None:
    """Run the snapshot daemon until SIGINT or SIGTERM."""
    settings = settings or SnapshotSettings()
    bus_settings = bus_settings or BusSettings()
    pool = await create_pool(settings.database_url, min_size=2, max_size=8)
    transport = RabbitTransport(bus_settings, purpose="snapshot")
    try:
        await prepare_database(pool)
        await transport.start()
        relay = OutboxRelay(pool, transport, database_url=settings.database_url)
        await relay.start()
        deps = SnapshotDeps(delta_max=settings.snapshot_delta_max, supports_delta=delta_support(load_plugins()))
        service = SnapshotService.build(
            transport,
            PostgresUnitOfWorkFactory(pool, encode=encode),
            deps=deps,
            scheduler_poll=settings.snapshot_scheduler_poll,
            queue_kind=bus_settings.queue_kind,
        )
        await service.start()
        log.info("snapshot service running", namespace=bus_settings.namespace)
        await until_signalled()
        await service.stop()
        await relay.stop()
    finally:
        await transport.close()
        await pool.close()


async def until_signalled() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
