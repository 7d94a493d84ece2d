"""Shared by the bus/postgres integration tests: test messages, a migrated pool, and a small state table."""

from collections.abc import AsyncIterator
from uuid import UUID

import pytest

from bus.codec import encode
from bus.memory import MemoryTransport
from bus.ports import Binding, Delivery, Transport, UnitOfWork, deferred_writes
from bus.postgres import PostgresUnitOfWorkFactory, create_pool, migrate
from bus.postgres.pool import Pool, PoolConnection
from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from schemas import Command, Envelope, Event, message


@message("bustest.pg.add_item")
class AddItem(Command):
    """Add one to the item's counter (the state a duplicate must not change twice)."""

    item_id: UUID


@message("bustest.pg.item_added")
class ItemAdded(Event):
    """The counter of an item went up."""

    item_id: UUID


@pytest.fixture
async def bus_pool(database_url: str) -> AsyncIterator[Pool]:
    """A pool on this test's database with the bus schema migrated and an `items` table for handler state."""
    pool = await create_pool(database_url, min_size=1, max_size=6)
    async with pool.acquire() as connection:
        await migrate(connection)
        await connection.execute("CREATE TABLE items (item_id uuid PRIMARY KEY, count integer NOT NULL)")
    yield pool
    await pool.close()


@pytest.fixture
def units(bus_pool: Pool) -> PostgresUnitOfWorkFactory:
    """Units of work on the test's pool."""
    return PostgresUnitOfWorkFactory(bus_pool, encode=encode)


async def add_item(connection: PoolConnection, item_id: UUID) -> None:
    """The handler's state change: count one more for the item."""
    await connection.execute(
        "INSERT INTO items (item_id, count) VALUES ($1, 1) ON CONFLICT (item_id) DO UPDATE SET count = items.count + 1",
        item_id,
    )


async def item_count(pool: Pool, item_id: UUID) -> int:
    """How many times the item was added (0 if never)."""
    count = await pool.fetchval("SELECT count FROM items WHERE item_id = $1", item_id)
    return int(count or 0)


async def table_count(pool: Pool, table: str) -> int:
    """Rows in a bus table (`bus.outbox`, `bus.inbox`, `bus.journal`)."""
    return int(await pool.fetchval(f"SELECT count(*) FROM {table}"))


def add_item_command(item_id: UUID) -> Envelope:
    """An AddItem command as a producer would send it."""
    return Envelope.wrap(AddItem(item_id=item_id), producer="test@localhost")


@pytest.fixture(params=["memory", "rabbitmq"])
async def transport(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[Transport]:
    """The transport the relay publishes to, in this test's own namespace: in memory, then the real RabbitMQ."""
    if request.param == "memory":
        memory = MemoryTransport(BusSettings(namespace=namespace))
        await memory.start()
        yield memory
        await memory.close()
        return
    amqp_url: str = request.getfixturevalue("amqp_url")
    rabbit = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace))
    await rabbit.start()
    try:
        yield rabbit
    finally:
        await rabbit.close()
        await rabbit.delete_namespace()


class Received:
    """Collects what a queue receives, acking each message."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []

    async def __call__(self, delivery: Delivery) -> None:
        self.message_ids.append(delivery.message.message_id)
        await delivery.ack()


async def receive(transport: Transport, name: str, *bindings: Binding) -> Received:
    """Declare queue `name` with `bindings` and collect what it receives."""
    received = Received()
    queue = await transport.declare_queue(name, bindings)
    await transport.consume(queue, received, prefetch=256)
    return received


ADD_ITEM = (
    "INSERT INTO items (item_id, count) VALUES ($1, 1) ON CONFLICT (item_id) DO UPDATE SET count = items.count + 1"
)


@deferred_writes
async def add_item_later(command: AddItem, envelope: Envelope, uow: UnitOfWork) -> None:
    """The handler of AddItem written with deferred writes."""
    uow.defer(ADD_ITEM, command.item_id)
    uow.emit(Envelope.wrap(ItemAdded(item_id=command.item_id), cause=envelope))


async def handle_lazily(units: PostgresUnitOfWorkFactory, incoming: Envelope) -> bool:
    """Run `add_item_later` as the runtime runs a marked handler; return whether its work was kept."""
    context = units.begin("items", incoming, lazy=True)
    async with context as uow:
        assert uow is not None  # a lazy unit learns of a duplicate only at its commit
        await add_item_later(incoming.payload, incoming, uow)  # type: ignore[arg-type]
    return not context.duplicate
