"""OutboxRelay on a real PostgreSQL: nothing skipped, nothing published twice in practice, failures retried."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import cast
from uuid import uuid4

import asyncpg
import pytest
from pydantic import Field

from bus.codec import encode
from bus.ports import Binding, Delivery, Transport, UnitOfWork
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings, create_pool
from bus.postgres.pool import Pool
from bus.postgres.records import Outgoing, notify_channel, outbox_insert, route_by_kind
from bus.postgres.relay import NO_SUBSCRIBER
from bus.postgres.relay_settings import PassResult
from schemas import Command, Envelope, Transient, message
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
    bus_pool: Pool, transport: Transport, database_url: str
) -> None:
    # The writer is on a pool of its own, as another process would be: it has no relay of its own, so it notifies.
    received = await receive(transport, "items", EVENTS)
    relay = OutboxRelay(bus_pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=600))
    await relay.start()
    writer = await create_pool(database_url, min_size=1, max_size=1)
    try:
        await assert_eventually(relay.listening, what="the relay listens")
        event = item_added()
        async with PostgresUnitOfWorkFactory(writer, encode=encode).begin("api", None) as uow:
            assert uow is not None
            uow.emit(event.envelope)

        await assert_eventually(lambda: received.message_ids == [event.wire.message_id], what="woken by NOTIFY")
    finally:
        await writer.close()
        await relay.stop()
    assert await relay.pending() == 0


async def test_a_relay_of_the_same_pool_is_woken_without_a_notify(
    bus_pool: Pool, transport: Transport, database_url: str, units: PostgresUnitOfWorkFactory
) -> None:
    received = await receive(transport, "items", EVENTS)
    heard: list[str] = []
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(notify_channel("bus"), lambda *args: heard.append(str(args[-1])))
    relay = OutboxRelay(
        bus_pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=600), wakes=units.wakes
    )
    try:
        await relay.start()
        event = item_added()
        async with units.begin("api", None) as uow:
            assert uow is not None
            uow.emit(event.envelope)
        await assert_eventually(lambda: received.message_ids == [event.wire.message_id], what="woken in process")
        # Notifications arrive in commit order: once this marker is heard, a NOTIFY of the unit of work would have been.
        await bus_pool.execute(f"NOTIFY {notify_channel('bus')}, 'marker'")
        await assert_eventually(lambda: "marker" in heard, what="the marker notification")
        assert heard == ["marker"]

        # Once the relay stopped, the unit of work notifies again, for the relays of other processes.
        await relay.stop()
        async with units.begin("api", None) as uow:
            assert uow is not None
            uow.emit(item_added().envelope)
        await assert_eventually(lambda: len(heard) == 2, what="a NOTIFY without a local relay")
    finally:
        await relay.stop()
        await listener.close()


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


def routed(outgoing: Outgoing, routing_key: str) -> Outgoing:
    """The same message sent with another routing key."""
    return Outgoing(outgoing.envelope, outgoing.wire, outgoing.exchange, routing_key)


async def test_each_row_of_a_batch_is_settled_by_its_own_outcome_in_claim_order(
    bus_pool: Pool, transport: Transport, database_url: str
) -> None:
    received = await receive(transport, "items", COMMANDS)
    relay = OutboxRelay(bus_pool, transport, database_url=database_url)
    first, second, last = add_item(), add_item(), add_item()
    unroutable = routed(add_item(), "bustest.pg.nobody_listens")
    unheard = routed(item_added(), "bustest.pg.nobody_hears")
    await bus_pool.execute(outbox_insert("bus", [first, second, unroutable, unheard, last]))

    assert await relay.relay_once() == PassResult(claimed=5, published=4, failed=1)

    rows = {
        row["message_id"]: row
        for row in await bus_pool.fetch(
            "SELECT message_id::text, sent_at IS NOT NULL AS sent, attempts, last_error FROM bus.outbox"
        )
    }
    for done in (first, second, last):
        assert (rows[done.wire.message_id]["sent"], rows[done.wire.message_id]["last_error"]) == (True, None)
    assert (rows[unheard.wire.message_id]["sent"], rows[unheard.wire.message_id]["last_error"]) == (True, NO_SUBSCRIBER)
    failed = rows[unroutable.wire.message_id]
    assert (failed["sent"], failed["attempts"]) == (False, 1)
    assert "FAILED_PRECONDITION" in failed["last_error"]
    expected = [first.wire.message_id, second.wire.message_id, last.wire.message_id]
    await assert_eventually(lambda: len(received.message_ids) == 3, what="the three routable commands")
    assert received.message_ids == expected  # in claim order


class StalledPublishes:
    """A transport whose batch publishes never end (a broker that never confirms), until cancelled."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self.publishing = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)

    async def publish_each(self, items: object) -> list[BaseException | None]:
        self.publishing.set()
        await asyncio.Future()  # never settles
        raise AssertionError("unreachable")


async def test_a_cancelled_pass_gives_its_rows_back_at_once(
    bus_pool: Pool, transport: Transport, database_url: str
) -> None:
    stalled = StalledPublishes(transport)
    relay = OutboxRelay(bus_pool, cast(Transport, stalled), database_url=database_url)
    await bus_pool.execute(outbox_insert("bus", [add_item(), add_item()]))

    relaying = asyncio.create_task(relay.relay_once())
    await asyncio.wait_for(stalled.publishing.wait(), timeout=10)
    assert await bus_pool.fetchval("SELECT count(*) FROM bus.outbox WHERE next_attempt_at > now()") == 2  # leased
    relaying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await relaying

    assert await bus_pool.fetchval("SELECT count(*) FROM bus.outbox WHERE next_attempt_at <= now()") == 2
    assert await bus_pool.fetchval("SELECT count(*) FROM bus.outbox WHERE sent_at IS NOT NULL OR attempts > 0") == 0


@message("bustest.pg.connect_array")
class ConnectArray(Command):
    """A command that carries a secret, as adding a pool does."""

    server: str
    password: str = Field(json_schema_extra={"writeOnly": True})  # a secret the wire carries to its one receiver


async def test_a_delivered_secret_does_not_stay_at_rest_in_the_outbox(
    bus_pool: Pool, transport: Transport, database_url: str
) -> None:
    bodies: list[bytes] = []

    async def collect(delivery: Delivery) -> None:
        bodies.append(delivery.message.body)
        await delivery.ack()

    queue = await transport.declare_queue("arrays", [Binding("commands", "bustest.pg.connect_array"), COMMANDS])
    await transport.consume(queue, collect, prefetch=16)
    secret = "array-" + uuid4().hex
    with_secret = Envelope.wrap(ConnectArray(server="10.0.0.9", password=secret), producer="test@localhost")
    exchange, routing_key = route_by_kind(with_secret)
    await bus_pool.execute(
        outbox_insert("bus", [Outgoing(with_secret, encode(with_secret), exchange, routing_key), add_item()])
    )
    assert secret.encode() in await bus_pool.fetchval("SELECT body FROM bus.outbox WHERE type = $1", with_secret.type)

    relay = OutboxRelay(bus_pool, transport, database_url=database_url)
    assert (await relay.relay_once()).published == 2
    await assert_eventually(lambda: len(bodies) == 2, timeout=10)
    assert any(secret.encode() in body for body in bodies)  # the receiver gets the secret
    rows = await bus_pool.fetch("SELECT type, sent_at IS NOT NULL AS sent, body FROM bus.outbox ORDER BY id")
    assert [row["sent"] for row in rows] == [True, True]
    assert bytes(rows[0]["body"]) == b""  # emptied once delivered
    assert bytes(rows[1]["body"]) != b""  # a message without a secret is kept whole for an operator's look
