"""Units of work that begin at their commit (`lazy`, for handlers marked `deferred_writes`), on a real PostgreSQL:
one round trip, and still exactly once."""

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from bus.codec import encode
from bus.memory import MemoryTransport
from bus.postgres import PostgresUnitOfWorkFactory, create_pool
from bus.postgres.pool import Pool
from bus.runtime import Consumer
from bus.settings import BusSettings
from schemas import FailedPrecondition, InvalidArgument, StrataError
from tests.helpers import assert_eventually
from tests.integration.bus_postgres_support import (
    ADD_ITEM,
    AddItem,
    add_item_command,
    add_item_later,
    bus_pool,
    handle_lazily,
    item_count,
    table_count,
    units,
)

__all__ = ["bus_pool", "units"]  # fixtures used by name

pytestmark = pytest.mark.integration


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
    # A new factory: the first unit on a session also prepares the statements.
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
    transport.handling.add(outcomes)
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
        transport.handling.remove(outcomes)
        await consumer.stop()
        await transport.close()
