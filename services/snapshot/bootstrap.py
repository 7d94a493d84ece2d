"""The snapshot daemon: the only place that builds its adapters.

`SnapshotService.build(...)` runs the service on a given transport and units of work (for `strata up`, the demo
and tests, several services in one process); `run(settings)` is `strata run snapshot`: it opens the database
pool, RabbitMQ and the outbox relay itself, migrates, and runs until SIGINT or SIGTERM.
"""

from dataclasses import dataclass

import structlog

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
from services.runtime.health import HealthServer
from services.runtime.logs import configure_logging
from services.runtime.migrations import migrate_service_at
from services.runtime.settings import RuntimeSettings
from services.runtime.shutdown import GracefulShutdown
from services.snapshot.deps import SnapshotDeps
from services.snapshot.scheduler import PolicyScheduler
from services.snapshot.service import CONSUMER_NAME, consumer

log = structlog.get_logger(__name__)


SCHEMA = "snapshot"
SCHEDULER_POLL = 1.0  # seconds between looks for due policies when none was due


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
        scheduler_poll: float = SCHEDULER_POLL,
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


async def prepare_database(pool: Pool, database_url: str) -> None:
    """Create or upgrade the bus tables and schema `snapshot`."""
    async with pool.acquire() as connection:
        await migrate(connection)
    await migrate_service_at(database_url, SCHEMA, "services.snapshot.migrations")


async def run(settings: RuntimeSettings | None = None, bus_settings: BusSettings | None = None) -> None:
    """Run the snapshot daemon until SIGTERM or SIGINT, then shut down gracefully."""
    settings = settings or RuntimeSettings()
    bus_settings = bus_settings or BusSettings()
    configure_logging(CONSUMER_NAME, level=settings.log_level, json=settings.log_json)
    database_url = settings.database_url.get_secret_value()
    shutdown = GracefulShutdown(grace_seconds=settings.shutdown_grace_seconds)
    shutdown.install_signal_handlers()
    pool = await create_pool(database_url, min_size=1, max_size=8)
    shutdown.on_close("database pool", pool.close)
    await prepare_database(pool, database_url)
    transport = RabbitTransport(bus_settings, purpose=CONSUMER_NAME)
    await transport.start()
    shutdown.on_close("transport", transport.close)
    relay = OutboxRelay(pool, transport, database_url=database_url)
    await relay.start()
    shutdown.on_close("outbox relay", relay.stop)
    deps = SnapshotDeps(delta_max=settings.snapshot_delta_max, supports_delta=delta_support(load_plugins()))
    service = SnapshotService.build(
        transport, PostgresUnitOfWorkFactory(pool, encode=encode), deps=deps, queue_kind=bus_settings.queue_kind
    )
    await service.start()
    shutdown.on_stop_intake("snapshot consumer and scheduler", service.stop)
    health = HealthServer(host=settings.health_host, port=settings.health_port)
    await health.start()
    shutdown.on_close("health server", health.close)
    log.info("snapshot service running", health_port=health.port)
    await shutdown.run()
