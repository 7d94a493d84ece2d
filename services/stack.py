"""Every service in one process on a given transport and database: what `strata up` and `strata demo` run.

Each service keeps its own bootstrap (the only place that builds its adapters); this module only composes the
embeddable `build` functions of those bootstraps on one database pool, one transport and one outbox relay, in
the order that lets each service find the queues it publishes to.
"""

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from bus.codec import encode
from bus.ports import Transport
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings, create_pool, migrate
from bus.postgres.pool import Pool
from plugins.registry import Registry, load_plugins
from sagas.postgres_store import PostgresSagaStore
from schemas.errors import InvalidArgument
from services.agent.bootstrap import build_agent
from services.agent.libvirt_hypervisor import LibvirtHypervisor
from services.agent.schema import migrate_agent
from services.orchestrator.bootstrap import OrchestratorService
from services.orchestrator.bootstrap import prepare_database as prepare_orchestrator
from services.runtime.sealing import SecretSealer
from services.runtime.settings import RuntimeSettings
from services.snapshot.bootstrap import SnapshotService, delta_support
from services.snapshot.bootstrap import prepare_database as prepare_snapshot
from services.snapshot.deps import SnapshotDeps
from services.storage.bootstrap import build_storage
from services.storage.schema import migrate_storage

log = structlog.get_logger(__name__)
EVERY_SERVICE = ("storage", "snapshot", "orchestrator", "agent")


class Startable(Protocol):
    """A built service: started once, stopped once."""

    async def start(self) -> None:
        """Start consuming."""

    async def stop(self) -> None:
        """Stop consuming; in-flight work finishes first."""


@dataclass(frozen=True)
class Placement:
    """Where the in-process agent pretends to run."""

    host: str = "localhost"
    cluster: str = "default"
    libvirt_uri: str = "test:///default"


@dataclass
class System:
    """The running services of one process and the adapters they share."""

    pool: Pool
    transport: Transport
    relay: OutboxRelay
    store: PostgresSagaStore
    services: list[tuple[str, Startable]] = field(default_factory=list)

    @classmethod
    async def start(
        cls,
        database_url: str,
        transport: Transport,
        *,
        settings: RuntimeSettings,
        placement: Placement,
        plugins: Registry | None = None,
        relay_poll: float = 0.2,
        timer_poll: float = 0.1,
        only: Collection[str] = EVERY_SERVICE,
    ) -> "System":
        """Migrate every service's tables, then build and start storage, snapshot, orchestrator and an agent.

        The transport must not be started yet; it is started here and closed by `stop`. `only` picks some of
        storage, snapshot, orchestrator and agent (`strata run snapshot` is this with one).
        """
        plugins = plugins or load_plugins()
        # Before anything starts: a bad key file fails here, with nothing to clean up.
        sealer = SecretSealer.from_file(settings.secret_key_file) if "agent" in only else None
        pool = await create_pool(database_url, min_size=2, max_size=10)
        try:
            async with pool.acquire() as connection:
                await migrate(connection)
                await migrate_storage(connection)
                await migrate_agent(connection)
            await prepare_snapshot(pool, database_url)
            await prepare_orchestrator(pool)
            await transport.start()
        except BaseException:
            await pool.close()
            raise
        relay = OutboxRelay(
            pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=relay_poll)
        )
        await relay.start()
        units = PostgresUnitOfWorkFactory(pool, encode=encode)
        store = PostgresSagaStore(pool)
        system = cls(pool, transport, relay, store)
        deps = SnapshotDeps(delta_max=settings.snapshot_delta_max, supports_delta=delta_support(plugins))
        factories: dict[str, Callable[[], Startable]] = {
            "storage": lambda: build_storage(
                transport,
                units,
                plugins=plugins,
                thresholds=settings.capacity_thresholds(),
                stats_interval=settings.storage_stats_interval / 1000,
            ),
            "snapshot": lambda: SnapshotService.build(transport, units, deps=deps),
            "orchestrator": lambda: OrchestratorService.build(transport, units, store, timer_poll=timer_poll),
            "agent": lambda: build_agent(
                transport,
                units,
                host=placement.host,
                cluster=placement.cluster,
                hypervisor=LibvirtHypervisor(placement.libvirt_uri),
                plugins=plugins,
                sealer=_required(sealer),
            ),
        }
        unknown = set(only) - set(factories)
        if unknown:
            await system.stop()
            raise InvalidArgument(f"no service named {', '.join(sorted(unknown))}", field="service")
        built = [(name, factories[name]()) for name in EVERY_SERVICE if name in only]
        try:
            for name, service in built:
                await service.start()
                system.services.append((f"agent@{placement.host}" if name == "agent" else name, service))
                log.info("service started", service=name)
        except BaseException:
            await system.stop()
            raise
        return system

    async def stop(self) -> None:
        """Stop the services in reverse order, then the relay, the transport and the pool."""
        for name, service in reversed(self.services):
            try:
                await service.stop()
            except Exception as error:  # one failing stop must not keep the others running
                log.error("service did not stop cleanly", service=name, error_class=type(error).__name__)
        self.services.clear()
        await self.relay.stop()
        await self.transport.close()
        await self.pool.close()


def _required(sealer: SecretSealer | None) -> SecretSealer:
    if sealer is None:  # only the agent is built with a sealer, and then it was read before the start
        raise RuntimeError("the agent is built without the deployment key")
    return sealer
