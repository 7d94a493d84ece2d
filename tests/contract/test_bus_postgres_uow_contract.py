"""The UnitOfWork contract: every adapter must pass these, inherited unchanged: in memory, PostgreSQL, PostgreSQL's
lazy units (a `deferred_writes` handler's) and the saga coordinator's units (`sagas.postgres_units`).

What the runtime relies on: a duplicate changes nothing (what its handler wrote or emitted is never kept, and the
context says `duplicate` after the block); a failed handler leaves no trace (its redelivery runs as if for the
first time); what a handler emits is published only if it succeeded. When the duplicate is known: an eager unit
knows it before the handler runs (it gives None, and the handler does not run); a lazy unit knows it only at its
commit (or at `begin()`), after the handler ran, so a handler given lazy units must have no effect outside its
unit of work (see `bus.ports.UnitOfWorkContext.duplicate`).
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import uuid4

import pytest

from bus.facade import Bus
from bus.memory import MemoryTransport
from bus.memory_uow import MemoryUnitOfWorkFactory
from bus.ports import Binding, Delivery, UnitOfWorkContext, UnitOfWorkFactory
from bus.postgres import OutboxRelay, PostgresUnitOfWork, PostgresUnitOfWorkFactory, create_pool, migrate
from bus.postgres.pool import Pool
from bus.settings import BusSettings
from sagas.postgres_units import SagaUnitOfWorkFactory
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
    lazy: bool = False

    def begin(self, consumer: str, incoming: Envelope | None) -> UnitOfWorkContext:
        """A unit as the consumer runtime opens it for this adapter's handlers."""
        return self.units.begin(consumer, incoming, lazy=self.lazy)

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

    async def test_a_duplicate_keeps_nothing_of_what_its_handler_did(self, harness: Harness) -> None:
        incoming = command()
        first_event = event_for(incoming)
        async with harness.begin("items", incoming) as first:
            assert first is not None
            first.emit(first_event)
        second = harness.begin("items", incoming)
        async with second as uow:
            if uow is not None:  # a lazy unit: its handler runs, and nothing it does is kept
                uow.emit(event_for(incoming))
        assert second.duplicate
        assert await harness.published() == [str(first_event.message_id)]

    async def test_each_consumer_has_its_own_inbox(self, harness: Harness) -> None:
        incoming = command()
        async with harness.begin("items", incoming) as first:
            assert first is not None
        other = harness.begin("audit", incoming)
        async with other as uow:
            assert uow is not None
        assert not other.duplicate

    async def test_a_failed_handler_leaves_no_trace(self, harness: Harness) -> None:
        incoming = command()

        async def failing() -> None:
            async with harness.begin("items", incoming) as uow:
                assert uow is not None
                uow.emit(event_for(incoming))
                raise RuntimeError("handler failed")

        with pytest.raises(RuntimeError):
            await failing()

        assert await harness.published() == []
        retry = harness.begin("items", incoming)
        async with retry as uow:
            assert uow is not None  # the redelivery runs as if for the first time
        assert not retry.duplicate

    async def test_what_a_handler_emits_is_published_once_it_succeeded(self, harness: Harness) -> None:
        incoming = command()
        emitted = [event_for(incoming), event_for(incoming)]
        async with harness.begin("items", incoming) as uow:
            assert uow is not None
            for envelope in emitted:
                uow.emit(envelope)

        assert sorted(await harness.published()) == sorted(str(envelope.message_id) for envelope in emitted)


class DuplicateKnownFirst:
    """For eager adapters: the duplicate is known before the handler runs."""

    async def test_a_duplicate_is_known_before_the_handler_runs(self, harness: Harness) -> None:
        incoming = command()
        async with harness.begin("items", incoming) as first:
            assert first is not None
        async with harness.begin("items", incoming) as second:
            assert second is None


class DuplicateKnownAtCommit:
    """For lazy adapters: the handler of a duplicate runs; the context says `duplicate` once the block ends."""

    async def test_a_duplicate_is_known_at_the_commit(self, harness: Harness) -> None:
        incoming = command()
        async with harness.begin("items", incoming) as first:
            assert first is not None
        second = harness.begin("items", incoming)
        async with second as uow:
            assert uow is not None
            assert not second.duplicate
        assert second.duplicate


class TestMemoryUnitOfWork(UnitOfWorkContract, DuplicateKnownFirst):
    @pytest.fixture
    async def harness(self, namespace: str) -> AsyncIterator[Harness]:
        broker = await start_broker(namespace)
        yield Harness(MemoryUnitOfWorkFactory(Bus(broker.transport)), broker)
        await broker.transport.close()


async def open_pool(database_url: str) -> Pool:
    pool = await create_pool(database_url, max_size=4)
    async with pool.acquire() as connection:
        await migrate(connection)
    return pool


class TestPostgresUnitOfWork(UnitOfWorkContract, DuplicateKnownFirst):
    @pytest.fixture
    async def harness(self, namespace: str, database_url: str) -> AsyncIterator[Harness]:
        pool = await open_pool(database_url)
        broker = await start_broker(namespace)
        relay = OutboxRelay(pool, broker.transport, database_url=database_url)
        yield Harness(PostgresUnitOfWorkFactory(pool), broker, relay)
        await broker.transport.close()
        await pool.close()


class TestPostgresLazyUnitOfWork(UnitOfWorkContract, DuplicateKnownAtCommit):
    """The units of a handler marked `deferred_writes`: begun at the commit, in one round trip."""

    @pytest.fixture
    async def harness(self, namespace: str, database_url: str) -> AsyncIterator[Harness]:
        pool = await open_pool(database_url)
        broker = await start_broker(namespace)
        relay = OutboxRelay(pool, broker.transport, database_url=database_url)
        yield Harness(PostgresUnitOfWorkFactory(pool), broker, relay, lazy=True)
        await broker.transport.close()
        await pool.close()


class TestSagaUnitOfWork(UnitOfWorkContract, DuplicateKnownAtCommit):
    """The saga coordinator's units: lazy, readable before they begin, begun on demand."""

    @pytest.fixture
    async def harness(self, namespace: str, database_url: str) -> AsyncIterator[Harness]:
        pool = await open_pool(database_url)
        broker = await start_broker(namespace)
        relay = OutboxRelay(pool, broker.transport, database_url=database_url)
        yield Harness(SagaUnitOfWorkFactory(pool), broker, relay)
        await broker.transport.close()
        await pool.close()

    async def test_a_unit_begun_on_demand_says_a_duplicate_there(self, harness: Harness) -> None:
        incoming = command()
        async with harness.begin("items", incoming) as first:
            assert isinstance(first, PostgresUnitOfWork)
            assert await first.begin()
            first.emit(event_for(incoming))
        second = harness.begin("items", incoming)
        async with second as uow:
            assert isinstance(uow, PostgresUnitOfWork)
            assert not await uow.begin()
            uow.emit(event_for(incoming))  # too late: the unit is over
        assert second.duplicate
        assert len(await harness.published()) == 1
