"""PostgresUnitOfWork on a real PostgreSQL: inbox, outbox and journal commit with the state, or not at all."""

import asyncio
from collections.abc import Awaitable, Callable
from uuid import uuid4

import pytest

from bus.postgres import PostgresUnitOfWorkFactory, create_pool
from bus.postgres.pool import Pool
from schemas import AlreadyExists, Envelope
from tests.integration.bus_postgres_support import (
    ItemAdded,
    add_item,
    add_item_command,
    bus_pool,
    handle_lazily,
    item_count,
    table_count,
    units,
)

__all__ = ["bus_pool", "units"]  # fixtures used by name

pytestmark = pytest.mark.integration


async def handle(units: PostgresUnitOfWorkFactory, incoming: Envelope) -> bool:
    """The handler of AddItem as the runtime runs it; return whether it ran (False: a duplicate)."""
    async with units.begin("items", incoming) as uow:
        if uow is None:
            return False
        await add_item(uow.connection, incoming.payload.item_id)  # type: ignore[attr-defined]
        uow.emit(Envelope.wrap(ItemAdded(item_id=incoming.payload.item_id), cause=incoming))  # type: ignore[attr-defined]
        return True


# Both forms of handler: the inbox row first (the duplicate never runs the handler), and deferred_writes (the
# duplicate runs it, and its commit keeps nothing).
BOTH_FORMS = pytest.mark.parametrize("handled", [handle, handle_lazily], ids=["inbox_first", "deferred_writes"])
Handled = Callable[[PostgresUnitOfWorkFactory, Envelope], Awaitable[bool]]


@BOTH_FORMS
async def test_a_message_delivered_twice_changes_state_once(
    bus_pool: Pool, units: PostgresUnitOfWorkFactory, handled: Handled
) -> None:
    command = add_item_command(uuid4())

    assert await handled(units, command) is True
    assert await handled(units, command) is False

    assert await item_count(bus_pool, command.payload.item_id) == 1  # type: ignore[attr-defined]
    assert await table_count(bus_pool, "bus.outbox") == 1
    assert await table_count(bus_pool, "bus.inbox") == 1


@BOTH_FORMS
async def test_concurrent_duplicates_change_state_once(
    bus_pool: Pool, units: PostgresUnitOfWorkFactory, handled: Handled
) -> None:
    command = add_item_command(uuid4())

    ran = await asyncio.gather(*(handled(units, command) for _ in range(4)))

    assert sorted(ran) == [False, False, False, True]
    assert await item_count(bus_pool, command.payload.item_id) == 1  # type: ignore[attr-defined]


async def test_the_same_message_for_two_consumers_runs_for_each(
    bus_pool: Pool, units: PostgresUnitOfWorkFactory
) -> None:
    command = add_item_command(uuid4())

    async with units.begin("first", command) as first:
        assert first is not None
    async with units.begin("second", command) as second:
        assert second is not None

    assert await table_count(bus_pool, "bus.inbox") == 2


async def test_a_failing_handler_leaves_no_outbox_no_inbox_and_no_state(
    bus_pool: Pool, units: PostgresUnitOfWorkFactory
) -> None:
    command = add_item_command(uuid4())

    async def failing_handler() -> None:
        async with units.begin("items", command) as uow:
            assert uow is not None
            await add_item(uow.connection, command.payload.item_id)  # type: ignore[attr-defined]
            uow.emit(Envelope.wrap(ItemAdded(item_id=command.payload.item_id), cause=command))  # type: ignore[attr-defined]
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await failing_handler()

    assert await item_count(bus_pool, command.payload.item_id) == 0  # type: ignore[attr-defined]
    assert await table_count(bus_pool, "bus.outbox") == 0
    assert await table_count(bus_pool, "bus.inbox") == 0
    assert await table_count(bus_pool, "bus.journal") == 0
    # Not a duplicate afterwards: the redelivery runs the handler.
    assert await handle(units, command) is True


async def test_a_driver_error_in_the_handler_leaves_as_a_strata_error(
    bus_pool: Pool, units: PostgresUnitOfWorkFactory
) -> None:
    command = add_item_command(uuid4())
    item_id = command.payload.item_id  # type: ignore[attr-defined]
    await bus_pool.execute("INSERT INTO items (item_id, count) VALUES ($1, 5)", item_id)

    async def conflicting_handler() -> None:
        async with units.begin("items", command) as uow:
            assert uow is not None
            await uow.connection.execute("INSERT INTO items (item_id, count) VALUES ($1, 1)", item_id)

    with pytest.raises(AlreadyExists, match="SQLSTATE 23505") as raised:
        await conflicting_handler()

    assert raised.value.__cause__ is None
    assert await table_count(bus_pool, "bus.inbox") == 0
    assert await item_count(bus_pool, item_id) == 5


async def test_emitted_and_incoming_messages_are_journaled_with_their_lineage(
    bus_pool: Pool, units: PostgresUnitOfWorkFactory
) -> None:
    command = add_item_command(uuid4())
    await handle(units, command)

    rows = await bus_pool.fetch("SELECT * FROM bus.journal ORDER BY occurred_at")
    assert [row["type"] for row in rows] == ["bustest.pg.add_item", "bustest.pg.item_added"]
    event = rows[1]
    assert event["correlation_id"] == command.correlation_id
    assert event["causation_id"] == command.message_id
    outbox = await bus_pool.fetchrow("SELECT * FROM bus.outbox")
    assert outbox is not None
    assert (outbox["exchange"], outbox["routing_key"]) == ("events", "bustest.pg.item_added")
    assert outbox["sent_at"] is None


async def test_a_unit_without_incoming_message_writes_only_its_outbox(
    bus_pool: Pool, units: PostgresUnitOfWorkFactory
) -> None:
    async with units.begin("api", None) as uow:
        assert uow is not None
        uow.emit(add_item_command(uuid4()))

    assert await table_count(bus_pool, "bus.inbox") == 0
    assert await table_count(bus_pool, "bus.outbox") == 1
    assert await table_count(bus_pool, "bus.journal") == 1


async def test_a_session_that_lost_its_prepared_statements_prepares_them_again(
    database_url: str, bus_pool: Pool
) -> None:
    # One connection, so that the DEALLOCATE hits the session the unit of work prepared its statements on.
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        units = PostgresUnitOfWorkFactory(pool)
        first, second = add_item_command(uuid4()), add_item_command(uuid4())
        assert await handle(units, first) is True
        await pool.execute("DEALLOCATE bus_strata_inbox; DEALLOCATE bus_strata_journal")  # the outbox one stays

        assert await handle(units, second) is True
        assert await handle(units, second) is False
        assert await item_count(pool, second.payload.item_id) == 1  # type: ignore[attr-defined]
        # The other way round: the session holds them but the factory does not know it (PREPARE fails as a
        # duplicate): a new factory on the same pool.
        assert await handle(PostgresUnitOfWorkFactory(pool), add_item_command(uuid4())) is True
        assert await table_count(pool, "bus.outbox") == 3
        assert await table_count(pool, "bus.journal") == 6
    finally:
        await pool.close()
