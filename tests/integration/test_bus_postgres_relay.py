"""OutboxRelay on a real PostgreSQL: nothing skipped, nothing published twice in practice, failures retried."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from uuid import uuid4

import asyncpg
import pytest

from bus.codec import encode
from bus.ports import Binding, Transport, UnitOfWork
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings
from bus.postgres.pool import Pool
from bus.postgres.records import Outgoing, outbox_insert, route_by_kind
from bus.postgres.relay import NO_SUBSCRIBER
from schemas import Envelope, Transient
from tests.helpers import assert_eventually
from tests.integration.bus_postgres_support import (
    ItemAdded,
    add_item_command,
    bus_pool,
    receive,
    transport,
    units,
)

__all__ = ["bus_pool", "transport", "units"]  # fixtures used by name

pytestmark = pytest.mark.integration
EVENTS = Binding("events", "bustest.pg.item_added")
COMMANDS = Binding("commands", "bustest.pg.add_item")


@asynccontextmanager
async def units_after_outage(pool: Pool) -> AsyncIterator[UnitOfWork]:
    """A unit of work, retried while the pool replaces connections the server cut (they fail once, as Transient)."""
    units = PostgresUnitOfWorkFactory(pool)
    for _ in range(pool.get_max_size() + 1):
        try:
            async with units.begin("api", None) as uow:
                assert uow is not None
                yield uow
                return
        except Transient:
            continue
    raise AssertionError("no working connection after the outage")


def item_added() -> Outgoing:
    envelope = Envelope.wrap(ItemAdded(item_id=uuid4()), producer="test@localhost")
    exchange, routing_key = route_by_kind(envelope)
    return Outgoing(envelope, encode(envelope), exchange, routing_key)


def add_item() -> Outgoing:
    envelope = add_item_command(uuid4())
    exchange, routing_key = route_by_kind(envelope)
    return Outgoing(envelope, encode(envelope), exchange, routing_key)


async def test_an_event_nobody_subscribes_to_is_settled_not_retried_forever(
    bus_pool: Pool, transport: Transport, database_url: str
) -> None:
    relay = OutboxRelay(bus_pool, transport, database_url=database_url)
    await bus_pool.execute(outbox_insert("bus", [item_added()]))

    assert (await relay.relay_once()).published == 1
    row = await bus_pool.fetchrow("SELECT sent_at IS NOT NULL AS settled, last_error FROM bus.outbox")
    assert row is not None
    assert row["settled"] is True
    assert row["last_error"] == NO_SUBSCRIBER
    assert await relay.pending() == 0


async def test_rows_that_commit_out_of_insertion_order_are_all_published(
    bus_pool: Pool, transport: Transport, database_url: str
) -> None:
    received = await receive(transport, "items", EVENTS)
    relay = OutboxRelay(bus_pool, transport, database_url=database_url)
    early, late = item_added(), item_added()
    async with bus_pool.acquire() as slow, bus_pool.acquire() as fast:
        slow_transaction = slow.transaction()
        await slow_transaction.start()
        await slow.execute(outbox_insert("bus", [early]))  # takes the lower id...
        async with fast.transaction():
            await fast.execute(outbox_insert("bus", [late]))  # ...but commits second
        assert (await relay.relay_once()).published == 1
        await slow_transaction.commit()

    assert await relay.drain() == 1
    await assert_eventually(lambda: len(received.message_ids) == 2, what="both messages received")
    assert sorted(received.message_ids) == sorted([early.wire.message_id, late.wire.message_id])
    assert await relay.pending() == 0
    assert await relay.purge_sent(older_than_seconds=0) == 2
    assert await bus_pool.fetchval("SELECT count(*) FROM bus.outbox") == 0


async def test_housekeeping_deletes_what_outlived_its_retention(
    bus_pool: Pool, transport: Transport, database_url: str, units: PostgresUnitOfWorkFactory
) -> None:
    await receive(transport, "items", EVENTS)
    relay = OutboxRelay(
        bus_pool, transport, database_url=database_url, settings=RelaySettings(sent_retention=0, inbox_retention=3600)
    )
    old, recent = add_item_command(uuid4()), add_item_command(uuid4())
    for incoming in (old, recent):
        async with units.begin("items", incoming) as uow:
            assert uow is not None
            uow.emit(item_added().envelope)
    await bus_pool.execute(
        "UPDATE bus.inbox SET received_at = now() - interval '2 hours' WHERE message_id = $1", old.message_id
    )
    await relay.drain()

    assert await relay.housekeeping() == (2, 1)
    assert await bus_pool.fetchval("SELECT count(*) FROM bus.journal") == 4  # the journal is history: kept
    async with units.begin("items", recent) as duplicate:
        assert duplicate is None


async def test_two_relays_at_once_publish_every_row_once(
    bus_pool: Pool, transport: Transport, database_url: str
) -> None:
    received = await receive(transport, "items", EVENTS)
    rows = [item_added() for _ in range(300)]
    await bus_pool.execute(outbox_insert("bus", rows))
    settings = RelaySettings(batch_size=25)
    relays = [OutboxRelay(bus_pool, transport, database_url=database_url, settings=settings) for _ in range(2)]

    published = await asyncio.gather(*(relay.drain() for relay in relays))

    assert sum(published) == 300
    await assert_eventually(lambda: len(received.message_ids) >= 300, what="every row received")
    assert sorted(received.message_ids) == sorted(row.wire.message_id for row in rows)


async def test_a_failed_publish_stays_unsent_and_is_retried_after_its_back_off(
    bus_pool: Pool, transport: Transport, database_url: str
) -> None:
    relay = OutboxRelay(
        bus_pool, transport, database_url=database_url, settings=RelaySettings(backoff_initial=0.2, backoff_max=1)
    )
    row = add_item()
    await bus_pool.execute(outbox_insert("bus", [row]))

    assert (await relay.relay_once()).failed == 1  # no queue is bound yet: an unroutable command is an error
    failed = await bus_pool.fetchrow("SELECT attempts, last_error, next_attempt_at > now() AS later FROM bus.outbox")
    assert failed is not None
    assert failed["attempts"] == 1
    assert failed["later"] is True
    assert "FAILED_PRECONDITION" in failed["last_error"]
    assert (await relay.relay_once()).claimed == 0  # backing off

    received = await receive(transport, "items", COMMANDS)

    async def published() -> bool:
        return (await relay.relay_once()).published == 1

    # Typed as the union assert_eventually takes: mypy cannot infer its type variable from a coroutine function.
    condition: Callable[[], Awaitable[bool] | bool] = published
    await assert_eventually(condition, timeout=5, what="the row published after its back-off")
    await assert_eventually(lambda: received.message_ids == [row.wire.message_id], what="the row received")


async def test_the_relay_wakes_on_commit_without_waiting_for_its_poll(
    bus_pool: Pool, transport: Transport, database_url: str, units: PostgresUnitOfWorkFactory
) -> None:
    received = await receive(transport, "items", EVENTS)
    relay = OutboxRelay(bus_pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=600))
    await relay.start()
    try:
        await assert_eventually(relay.listening, what="the relay listens")
        event = item_added()
        async with units.begin("api", None) as uow:
            assert uow is not None
            uow.emit(event.envelope)

        await assert_eventually(lambda: received.message_ids == [event.wire.message_id], what="woken by NOTIFY")
    finally:
        await relay.stop()
    assert await relay.pending() == 0


async def test_the_relay_survives_losing_its_database_connections(
    bus_pool: Pool, transport: Transport, database_url: str, postgres_url: str
) -> None:
    received = await receive(transport, "items", EVENTS)
    relay = OutboxRelay(bus_pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=600))
    await relay.start()
    try:
        await assert_eventually(relay.listening, what="the relay listens")
        admin = await asyncpg.connect(postgres_url)
        try:
            # Only this test's own database: other tests' connections are not ours to cut.
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                database_url.rsplit("/", 1)[1],
            )
        finally:
            await admin.close()
        # The pool and the LISTEN connection were cut; a new NOTIFY must still reach the relay once it is back.
        await assert_eventually(relay.listening, what="the relay listens again")
        event = item_added()
        async with units_after_outage(bus_pool) as uow:
            uow.emit(event.envelope)

        await assert_eventually(lambda: received.message_ids == [event.wire.message_id], what="relayed after the cut")
    finally:
        await relay.stop()
