"""The saga engine on the real servers, as tests, the crash-test worker and the bench build it.

`SagaNode` is one coordinator (or participant) with its own pool, RabbitMQ connection and outbox relay.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from bus.codec import encode
from bus.facade import Bus
from bus.ports import UnitOfWorkFactory
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings, create_pool, migrate
from bus.postgres.pool import Pool
from bus.rabbit import RabbitTransport
from bus.runtime import Consumer
from bus.settings import BusSettings
from sagas.coordinator import Coordinator
from sagas.postgres_migrate import migrate_sagas
from sagas.postgres_store import PostgresSagaStore
from sagas.records import SagaInstance, SagaStatus
from tests.bus_fixtures import bus_settings
from tests.helpers import assert_eventually
from tests.sagas_fixtures import EFFECTS_TABLE, Participant, saga_test_messages, test_sagas


async def prepare_database(database_url: str) -> None:
    """Migrate the bus and saga tables and create the participant's effects table."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as connection:
            await migrate(connection)
            await migrate_sagas(connection)
            await connection.execute(EFFECTS_TABLE)
    finally:
        await pool.close()


@dataclass
class SagaNode:
    """A process's share of the system: a pool, a RabbitMQ connection, a relay, and what runs on them."""

    pool: Pool
    transport: RabbitTransport
    units: UnitOfWorkFactory
    relay: OutboxRelay
    store: PostgresSagaStore
    running: list[Coordinator | Consumer] = field(default_factory=list)

    @classmethod
    async def open(
        cls,
        database_url: str,
        amqp_url: str,
        namespace: str,
        *,
        settings: BusSettings | None = None,
        wrap_units: Callable[[UnitOfWorkFactory], UnitOfWorkFactory] | None = None,
    ) -> "SagaNode":
        pool = await create_pool(database_url, min_size=2, max_size=8)
        transport = RabbitTransport(settings or bus_settings(namespace, amqp_url), purpose="sagas-test")
        await transport.start()
        relay = OutboxRelay(pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=0.2))
        await relay.start()
        units: UnitOfWorkFactory = PostgresUnitOfWorkFactory(pool, encode=encode)
        return cls(
            pool,
            transport,
            wrap_units(units) if wrap_units else units,
            relay,
            PostgresSagaStore(pool),
        )

    @property
    def bus(self) -> Bus:
        return Bus(self.transport, messages=saga_test_messages)

    async def run_coordinator(self, *, prefetch: int = 64) -> Coordinator:
        coordinator = Coordinator(
            self.transport,
            self.units,
            self.store,
            sagas=test_sagas,
            messages=saga_test_messages,
            prefetch=prefetch,
            timer_poll=0.05,
        )
        await coordinator.start()
        self.running.append(coordinator)
        return coordinator

    async def run_participant(self, participant: Participant, *, prefetch: int = 64) -> Consumer:
        consumer = Consumer(
            self.transport,
            self.units,
            name="participant",
            handlers=participant.handlers(),
            prefetch=prefetch,
            messages=saga_test_messages,
        )
        await consumer.start()
        self.running.append(consumer)
        return consumer

    async def status(self, saga_id: UUID) -> SagaInstance | None:
        async with self.store.session() as session:
            return await session.get_instance(saga_id)

    async def close(self, *, delete_namespace: bool = False) -> None:
        for running in reversed(self.running):
            await running.stop()
        await self.relay.stop()
        await self.transport.close()
        if delete_namespace:
            await self.delete_namespace()
        await self.pool.close()

    async def delete_namespace(self) -> None:
        """Delete every exchange and queue of the namespace, the saga ones included (after every node closed)."""
        namespace = self.transport.namespace
        await self.transport.delete_namespace([f"{namespace}.participant", f"{namespace}.saga-coordinator"])


async def wait_ended(node: SagaNode, saga_ids: list[UUID], *, timeout: float = 30.0) -> dict[UUID, SagaStatus]:
    """Wait until every saga reached an end state (or STUCK); return their statuses."""

    async def statuses() -> dict[UUID, SagaStatus] | None:
        found: dict[UUID, SagaStatus] = {}
        for saga_id in saga_ids:
            instance = await node.status(saga_id)
            if instance is None or not (instance.status.ended or instance.status is SagaStatus.STUCK):
                return None
            found[saga_id] = instance.status
        return found

    ended = await assert_eventually(statuses, timeout=timeout, what=f"{len(saga_ids)} sagas ended")
    assert ended is not None
    return ended
