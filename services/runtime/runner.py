"""The one runner: declared daemons (`services.runtime.daemon`) on one database pool, one transport and one relay.

`Runner.start` checks the daemons' settings, opens the pool, applies the bus's and every daemon's migrations,
starts the transport, declares the topology (every shared queue with its bindings, so that nothing published
before a consumer's first start is lost), starts the outbox relay, then builds and starts each daemon in order.
`stop` undoes it in reverse. `strata run`, `strata up`, the demo (on the memory transport) and the e2e daemons
all start their services through it; `services.runtime.serve` wraps it in a process with health and signals.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog
from prometheus_client import CollectorRegistry

from bus.codec import encode
from bus.ports import DeadLetters, Transport
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings, create_pool, migrate
from bus.postgres.pool import Pool
from bus.postgres.wake import RelayWakes
from plugins.registry import Registry, load_plugins
from services.runtime.checks import broker_connected, consumer_running, database_answers, outbox_flowing
from services.runtime.daemon import Daemon, Migration, Service, Settings, Wiring
from services.runtime.health import HealthCheck, Refresh
from services.runtime.metrics import BusMetrics
from services.runtime.topology import apply_topology

log = structlog.get_logger(__name__)


@dataclass
class Runner:
    """Running daemons and the adapters they share."""

    pool: Pool
    transport: Transport
    relay: OutboxRelay
    settings: Settings
    metrics: CollectorRegistry
    bus_metrics: BusMetrics
    services: list[tuple[str, Service]] = field(default_factory=list)

    @classmethod
    async def start(
        cls,
        daemons: Sequence[Daemon],
        *,
        database_url: str,
        transport: Transport,
        settings: Settings,
        plugins: Registry | None = None,
        relay: RelaySettings | None = None,
        topology: Sequence[Daemon] = (),
        metrics: CollectorRegistry | None = None,
    ) -> "Runner":
        """Start `daemons` in order on `transport` (not started yet: it is started here and closed by `stop`).

        `topology`: the daemons whose queues to declare first (default: the ones started); a daemon process passes
        every declared daemon, so that what it publishes reaches consumers that never ran yet.
        """
        for daemon in daemons:  # before anything connects: a bad key file fails here, with nothing to clean up
            daemon.check(settings)
        plugins = plugins if plugins is not None else load_plugins()
        pool = await create_pool(database_url, min_size=2, max_size=10)
        try:
            await migrate_daemons(pool, daemons)
            await transport.start()
        except BaseException:
            await pool.close()
            raise
        wakes = RelayWakes()  # the relay is woken by this process's commits directly, not by NOTIFY
        outbox_relay = OutboxRelay(
            pool, transport, database_url=database_url, settings=relay or RelaySettings(), wakes=wakes
        )
        registry = metrics if metrics is not None else CollectorRegistry()
        dead_letters = transport if isinstance(transport, DeadLetters) else None
        bus_metrics = BusMetrics(registry, outbox_relay, dead_letters)
        runner = cls(pool, transport, outbox_relay, settings, registry, bus_metrics)
        try:
            await outbox_relay.start()
            declared = await apply_topology(transport, topology or daemons, kind=settings.bus.queue_kind)
            log.info("topology applied", queues=declared)
            units = PostgresUnitOfWorkFactory(pool, encode=encode, wakes=wakes)
            wiring = Wiring(settings, transport, units, pool, plugins, runner.metrics)
            for daemon in daemons:
                service = daemon.build(wiring)
                await service.start()
                runner.services.append((daemon.label_in(settings), service))
                log.info("service started", service=daemon.label_in(settings))
        except BaseException:
            await runner.stop()
            raise
        return runner

    def checks(self) -> dict[str, HealthCheck]:
        """What /healthz asks: the broker is reachable, the database answers, the outbox flows, every consumer
        consumes, and each service's own checks."""
        checks: dict[str, HealthCheck] = {
            "broker": broker_connected(self.transport),
            "database": database_answers(self.pool),
            "outbox": outbox_flowing(self.relay, self.settings.runtime),
        }
        for _name, service in self.services:
            for consumer in service.consumers:
                checks[f"consumer {consumer.name}"] = consumer_running(consumer)
            checks.update(service.checks)
        return checks

    def refreshers(self) -> list[Refresh]:
        """What sets the gauges before each /metrics answer: the bus's (outbox, dead letters), then the services'."""
        refreshers: list[Refresh] = [self.bus_metrics.refresh]
        for _name, service in self.services:
            refreshers += service.metrics
        return refreshers

    async def stop(self) -> None:
        """Stop the services in reverse order (in-flight messages finish), then the relay, transport and pool."""
        for _name, service in reversed(self.services):
            await service.stop()
        self.services.clear()
        await self.relay.stop()
        await self.transport.close()
        await self.pool.close()


async def migrate_daemons(pool: Pool, daemons: Sequence[Daemon]) -> None:
    """Create or upgrade the bus's tables, then every daemon's schemas (a migrator two daemons share runs once)."""
    migrations: list[Migration] = []
    for daemon in daemons:
        migrations += [migration for migration in daemon.migrations if migration not in migrations]
    async with pool.acquire() as connection:
        await migrate(connection)
        for migration in migrations:
            await migration(connection)
