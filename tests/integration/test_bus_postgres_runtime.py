"""The consumer runtime on PostgresUnitOfWorkFactory: a duplicate delivery changes state once, end to end."""

from collections.abc import Awaitable, Callable
from uuid import uuid4

import pytest

from bus.codec import encode
from bus.ports import Binding, Transport, UnitOfWork
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings
from bus.postgres.pool import Pool
from bus.runtime import Consumer
from schemas import Envelope
from tests.helpers import assert_eventually
from tests.integration.bus_postgres_support import (
    AddItem,
    ItemAdded,
    add_item,
    add_item_command,
    bus_pool,
    item_count,
    receive,
    transport,
    units,
)

__all__ = ["bus_pool", "transport", "units"]  # fixtures used by name

pytestmark = pytest.mark.integration


async def add_item_handler(command: AddItem, envelope: Envelope, uow: UnitOfWork) -> None:
    """Load, decide, record, emit: count the item and say so."""
    await add_item(uow.connection, command.item_id)
    uow.emit(Envelope.wrap(ItemAdded(item_id=command.item_id), cause=envelope, producer="items@test"))


async def test_a_message_delivered_twice_changes_state_once_and_emits_once(
    bus_pool: Pool, transport: Transport, units: PostgresUnitOfWorkFactory, database_url: str
) -> None:
    events = await receive(transport, "watcher", Binding("events", "bustest.pg.item_added"))
    # prefetch 1: deliveries are handled in order, so once the last one is done the duplicate was handled too.
    consumer = Consumer(transport, units, name="items", handlers={AddItem: add_item_handler}, prefetch=1)
    relay = OutboxRelay(bus_pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=0.2))
    await consumer.start()
    await relay.start()
    try:
        command, last = add_item_command(uuid4()), add_item_command(uuid4())
        for envelope in (command, command, last):
            await transport.publish("commands", envelope.type, encode(envelope))

        async def last_handled() -> bool:
            return await item_count(bus_pool, last.payload.item_id) == 1  # type: ignore[attr-defined]

        # Typed as the union assert_eventually takes: mypy cannot infer its type variable from a coroutine function.
        condition: Callable[[], Awaitable[bool] | bool] = last_handled
        await assert_eventually(condition, what="the last command handled")
        await assert_eventually(lambda: len(events.message_ids) == 2, what="one event per distinct command")
    finally:
        await relay.stop()
        await consumer.stop()

    assert await item_count(bus_pool, command.payload.item_id) == 1  # type: ignore[attr-defined]
    journaled = await bus_pool.fetchval(
        "SELECT count(*) FROM bus.journal WHERE correlation_id = $1", command.correlation_id
    )
    assert journaled == 2  # the command once (although delivered twice) and its event
