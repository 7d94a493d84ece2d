"""The UnitOfWork contract: the in-memory and PostgreSQL adapters must both pass these, inherited unchanged.

What the runtime relies on: a duplicate is recognised before the handler runs; a failed handler leaves no trace
(its redelivery runs as if for the first time); what a handler emits is published only if it succeeded.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import uuid4

import pytest

from bus.facade import Bus
from bus.memory import MemoryTransport
from bus.memory_uow import MemoryUnitOfWorkFactory
from bus.ports import Binding, Delivery, UnitOfWorkFactory
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, create_pool, migrate
from bus.settings import BusSettings
from schemas import Envelope
from tests.integration.bus_postgres_support import AddItem, ItemAdded

pytestmark = pytest.mark.contract


@dataclass
class Broker:
    """An in-memory broker with an `items` queue that records what reaches it."""

    transport: MemoryTransport
    received: list[str] = field(default_factory=list)

    async def on_delivery(self, delivery: Delivery) -> None:
        self.received.append(delivery.message.message_id)
        await delivery.ack()


async def start_broker(namespace: str) -> Broker:
    broker = Broker(MemoryTransport(BusSettings(namespace=namespace)))
    await broker.transport.start()
    queue = await broker.transport.declare_queue("items", [Binding("events", ItemAdded.message_type)])
    await broker.transport.consume(queue, broker.on_delivery, prefetch=64)
    return broker


@dataclass
class Harness:
    """A unit-of-work adapter wired to the broker (through a relay for the outbox adapters)."""

    units: UnitOfWorkFactory
    broker: Broker
    relay: OutboxRelay | None = None

    async def published(self) -> list[str]:
        """Message ids published so far."""
        if self.relay is not None:
            await self.relay.drain()
        return list(self.broker.received)


def command() -> Envelope:
    return Envelope.wrap(AddItem(item_id=uuid4()), producer="test@here")


def event_for(cause: Envelope) -> Envelope:
    return Envelope.wrap(ItemAdded(item_id=cause.payload.item_id), cause=cause)  # type: ignore[attr-defined]


class UnitOfWorkContract:
    """Each subclass provides a `harness` fixture for its adapter."""

    async def test_a_duplicate_is_known_before_the_handler_runs(self, harness: Harness) -> None:
        incoming = command()
        async with harness.units.begin("items", incoming) as first:
            assert first is not None
        async with harness.units.begin("items", incoming) as second:
            assert second is None

    async def test_each_consumer_has_its_own_inbox(self, harness: Harness) -> None:
        incoming = command()
        async with harness.units.begin("items", incoming) as first:
            assert first is not None
        async with harness.units.begin("audit", incoming) as other:
            assert other is not None

    async def test_a_failed_handler_leaves_no_trace(self, harness: Harness) -> None:
        incoming = command()

        async def failing() -> None:
            async with harness.units.begin("items", incoming) as uow:
                assert uow is not None
                uow.emit(event_for(incoming))
                raise RuntimeError("handler failed")

        with pytest.raises(RuntimeError):
            await failing()

        assert await harness.published() == []
        async with harness.units.begin("items", incoming) as retry:
            assert retry is not None  # the redelivery runs as if for the first time

    async def test_what_a_handler_emits_is_published_once_it_succeeded(self, harness: Harness) -> None:
        incoming = command()
        emitted = [event_for(incoming), event_for(incoming)]
        async with harness.units.begin("items", incoming) as uow:
            assert uow is not None
            for envelope in emitted:
                uow.emit(envelope)

        assert sorted(await harness.published()) == sorted(str(envelope.message_id) for envelope in emitted)


class TestMemoryUnitOfWork(UnitOfWorkContract):
    @pytest.fixture
    async def harness(self, namespace: str) -> AsyncIterator[Harness]:
        broker = await start_broker(namespace)
        yield Harness(MemoryUnitOfWorkFactory(Bus(broker.transport)), broker)
        await broker.transport.close()


class TestPostgresUnitOfWork(UnitOfWorkContract):
    @pytest.fixture
    async def harness(self, namespace: str, database_url: str) -> AsyncIterator[Harness]:
        pool = await create_pool(database_url, max_size=4)
        async with pool.acquire() as connection:
            await migrate(connection)
        broker = await start_broker(namespace)
        relay = OutboxRelay(pool, broker.transport, database_url=database_url)
        yield Harness(PostgresUnitOfWorkFactory(pool), broker, relay)
        await broker.transport.close()
        await pool.close()
