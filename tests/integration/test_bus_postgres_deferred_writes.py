"""Units of work that begin at their commit (`lazy`, for handlers marked `deferred_writes`), on a real PostgreSQL:
one round trip, and still exactly once."""

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from bus.codec import encode
from bus.memory import MemoryTransport
from bus.ports import UnitOfWork, deferred_writes
from bus.postgres import PostgresUnitOfWorkFactory, create_pool, unit_of_work
from bus.postgres.pool import Pool
from bus.runtime import Consumer, observe_handling, stop_observing
from bus.settings import BusSettings
from schemas import Envelope, FailedPrecondition, InvalidArgument, StrataError
from tests.helpers import assert_eventually
from tests.integration.bus_postgres_support import (
    AddItem,
    ItemAdded,
    add_item_command,
    bus_pool,
    item_count,
    table_count,
    units,
)

__all__ = ["bus_pool", "units"]  # fixtures used by name

pytestmark = pytest.mark.integration
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


@pytest.fixture
async def one_connection(database_url: str, bus_pool: Pool) -> AsyncIterator[tuple[Pool, list[str]]]:
    """A pool of one connection whose every query is recorded (after the bus schema exists)."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    queries: list[str] = []
    async with pool.acquire() as connection:
        connection.add_query_logger(lambda record: queries.append(record.query))
    yield pool, queries
    await pool.close()


async def test_a_lazy_unit_is_one_round_trip_that_keeps_everything(
    one_connection: tuple[Pool, list[str]],
) -> None:
    pool, queries = one_connection
    units = PostgresUnitOfWorkFactory(pool, encode=encode)
    unit_of_work._prepared_sessions.clear()  # the first unit on a session also prepares the statements
    for _ in range(2):
        command = add_item_command(uuid4())
        queries.clear()

        assert await handle_lazily(units, command) is True

        assert len(queries) == 1, queries
        assert queries[0].startswith(("BEGIN", "PREPARE")), queries
        assert await item_count(pool, command.payload.item_id) == 1  # type: ignore[attr-defined]
    assert await table_count(pool, "bus.inbox") == 2
    assert await table_count(pool, "bus.outbox") == 2
    assert await table_count(pool, "bus.journal") == 4  # each command and its event


async def test_a_duplicate_found_at_the_commit_keeps_nothing(bus_pool: Pool, units: PostgresUnitOfWorkFactory) -> None:
    command = add_item_command(uuid4())

    assert await handle_lazily(units, command) is True
    assert await handle_lazily(units, command) is False

    assert await item_count(bus_pool, command.payload.item_id) == 1  # type: ignore[attr-defined]
    assert await table_count(bus_pool, "bus.outbox") == 1
    assert await table_count(bus_pool, "bus.inbox") == 1


async def test_concurrent_duplicates_keep_the_work_of_one(bus_pool: Pool, units: PostgresUnitOfWorkFactory) -> None:
    command = add_item_command(uuid4())

    kept = await asyncio.gather(*(handle_lazily(units, command) for _ in range(4)))

    assert sorted(kept) == [False, False, False, True]
    assert await item_count(bus_pool, command.payload.item_id) == 1  # type: ignore[attr-defined]
    assert await table_count(bus_pool, "bus.outbox") == 1


async def test_a_failing_deferred_write_keeps_nothing_and_the_message_may_run_again(
    bus_pool: Pool, units: PostgresUnitOfWorkFactory
) -> None:
    command = add_item_command(uuid4())

    async def failing() -> None:
        async with units.begin("items", command, lazy=True) as uow:
            assert uow is not None
            uow.defer(ADD_ITEM, command.payload.item_id)  # type: ignore[attr-defined]
            uow.defer("INSERT INTO items (item_id, count) VALUES ($1, NULL)", uuid4())  # NOT NULL violated

    with pytest.raises(StrataError):
        await failing()

    assert await table_count(bus_pool, "bus.inbox") == 0
    assert await item_count(bus_pool, command.payload.item_id) == 0  # type: ignore[attr-defined]
    assert await handle_lazily(units, command) is True  # the redelivery runs as the first time


async def test_a_lazy_unit_refuses_its_connection_and_a_mismatched_statement(units: PostgresUnitOfWorkFactory) -> None:
    command = add_item_command(uuid4())

    async with units.begin("items", command, lazy=True) as uow:
        assert uow is not None
        with pytest.raises(FailedPrecondition, match="deferred_writes"):
            _ = uow.connection
        with pytest.raises(InvalidArgument, match=r"\$2 has no argument"):
            uow.defer("UPDATE items SET count = $2 WHERE item_id = $1", uuid4())
        with pytest.raises(InvalidArgument, match="no placeholder"):
            uow.defer("UPDATE items SET count = 1", 5)


class Outcomes:
    """What a consumer reported for each message it handled."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def observe(self, consumer: str, message_type: str, outcome: str, seconds: float) -> None:
        self.seen.append(outcome)


async def test_the_consumer_runs_a_marked_handler_in_a_lazy_unit(
    bus_pool: Pool, units: PostgresUnitOfWorkFactory, namespace: str
) -> None:
    transport = MemoryTransport(BusSettings(namespace=namespace))
    consumer = Consumer(transport, units, name="items", handlers={AddItem: add_item_later})
    outcomes = Outcomes()
    observe_handling(outcomes)
    await transport.start()
    await consumer.start()
    try:
        command = add_item_command(uuid4())
        for _ in range(2):  # the second delivery is a duplicate: acked, nothing kept
            await transport.publish("commands", AddItem.message_type, encode(command))

        await assert_eventually(lambda: len(outcomes.seen) == 2, what="both deliveries handled")
        assert outcomes.seen == ["ok", "duplicate"]
        assert await item_count(bus_pool, command.payload.item_id) == 1  # type: ignore[attr-defined]
        assert await table_count(bus_pool, "bus.outbox") == 1
        assert await transport.list_dead() == []
    finally:
        stop_observing(outcomes)
        await consumer.stop()
        await transport.close()
