"""The orchestrator daemon: the only place that builds its adapters.

`OrchestratorService.build(...)` runs the coordinator (every registered saga: importing `sagas.definitions.*`
registers them) and the outcome announcer on a given transport, units of work and saga store, for `strata up`,
the demo and tests; `run(settings)` is `strata run orchestrator`: its own pool, RabbitMQ, outbox relay,
migrations, until SIGINT or SIGTERM.
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
from sagas.coordinator import Coordinator
from sagas.definition import SagaRegistry, saga_registry
from sagas.definitions import revert_vm, snapshot_vm
from sagas.ports import SagaStore
from sagas.postgres_migrate import migrate_sagas
from sagas.postgres_store import PostgresSagaStore
from schemas.sagas import SagaEnded
from services.orchestrator.outcomes import SagaOutcomes
from services.runtime.health import HealthServer
from services.runtime.logs import configure_logging
from services.runtime.settings import RuntimeSettings
from services.runtime.shutdown import GracefulShutdown

log = structlog.get_logger(__name__)
COORDINATOR_NAME = "orchestrator"
OUTCOMES_NAME = "orchestrator.outcomes"
# Every domain event a participant of a registered saga may answer a step with.
REPLY_TYPES = tuple(dict.fromkeys((*revert_vm.REPLY_TYPES, *snapshot_vm.REPLY_TYPES)))


@dataclass
class OrchestratorService:
    """The saga coordinator (with its timer loop) and the announcer of operation outcomes."""

    coordinator: Coordinator
    outcomes: Consumer

    @classmethod
    def build(
        cls,
        transport: Transport,
        units: UnitOfWorkFactory,
        store: SagaStore,
        *,
        sagas: SagaRegistry = saga_registry,
        timer_poll: float = 0.1,
        prefetch: int = 64,
        queue_kind: QueueKind = QueueKind.QUORUM,
    ) -> "OrchestratorService":
        """Wire the orchestrator on `transport`, `units` and `store` (the store in the units' database)."""
        coordinator = Coordinator(
            transport,
            units,
            store,
            sagas=sagas,
            name=COORDINATOR_NAME,
            reply_types=REPLY_TYPES,
            prefetch=prefetch,
            timer_poll=timer_poll,
            announce_ends=True,
        )
        coordinator.consumer.queue_kind = queue_kind
        announcer = SagaOutcomes(store)
        outcomes = Consumer(
            transport,
            units,
            name=OUTCOMES_NAME,
            handlers={SagaEnded: announcer.on_saga_ended},
            prefetch=prefetch,
            queue_kind=queue_kind,
        )
        return cls(coordinator, outcomes)

    async def start(self) -> None:
        """Declare the queues, consume, and fire timers."""
        await self.outcomes.start()
        await self.coordinator.start()

    async def stop(self) -> None:
        """Stop taking work; what is in flight finishes or is rolled back and redelivered."""
        await self.coordinator.stop()
        await self.outcomes.stop()


async def prepare_database(pool: Pool) -> None:
    """Create or upgrade the bus tables and the saga tables."""
    async with pool.acquire() as connection:
        await migrate(connection)
        await migrate_sagas(connection)


async def run(settings: RuntimeSettings | None = None, bus_settings: BusSettings | None = None) -> None:
    """Run the orchestrator daemon until SIGTERM or SIGINT, then shut down gracefully."""
    settings = settings or RuntimeSettings()
    bus_settings = bus_settings or BusSettings()
    configure_logging(COORDINATOR_NAME, level=settings.log_level, json=settings.log_json)
    database_url = settings.database_url.get_secret_value()
    shutdown = GracefulShutdown(grace_seconds=settings.shutdown_grace_seconds)
    shutdown.install_signal_handlers()
    pool = await create_pool(database_url, min_size=2, max_size=8)
    shutdown.on_close("database pool", pool.close)
    await prepare_database(pool)
    transport = RabbitTransport(bus_settings, purpose=COORDINATOR_NAME)
    await transport.start()
    shutdown.on_close("transport", transport.close)
    relay = OutboxRelay(pool, transport, database_url=database_url)
    await relay.start()
    shutdown.on_close("outbox relay", relay.stop)
    service = OrchestratorService.build(
        transport,
        PostgresUnitOfWorkFactory(pool, encode=encode),
        PostgresSagaStore(pool),
        prefetch=bus_settings.prefetch,
        queue_kind=bus_settings.queue_kind,
    )
    await service.start()
    shutdown.on_stop_intake("coordinator and outcome announcer", service.stop)
    health = HealthServer(host=settings.health_host, port=settings.health_port)
    await health.start()
    shutdown.on_close("health server", health.close)
    log.info("orchestrator running", health_port=health.port, sagas=[d.name for d in saga_registry])
    await shutdown.run()
