"""A command that no queue takes is retried for a bounded time, then fails visibly (bus.postgres.undeliverable).

Before: the relay retried it forever, so the operation it belonged to waited forever (a saga holding its locks, a
pool add leaving its pool Initial), and nothing showed it but the relay's log.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import uuid4

import pytest

from bus.codec import encode
from bus.errors import Unroutable
from bus.ports import Binding
from bus.postgres import OutboxRelay, PostgresJournal, PostgresUnitOfWorkFactory, RelaySettings, create_pool, migrate
from bus.postgres.pool import Pool
from bus.rabbit import RabbitTransport
from schemas import Envelope, Message
from schemas.agent import AttachPoolToHost, PoolAttachToHostFailed
from schemas.delivery import CommandUndeliverable
from schemas.sagas import StepFailed
from tests.helpers import assert_eventually
from tests.integration.bus_postgres_support import AddItem

pytestmark = pytest.mark.integration

QUICK = RelaySettings(poll_interval=0.1, backoff_initial=0.05, backoff_max=0.1, undeliverable_after=0.3)


@dataclass
class Outbox:
    pool: Pool
    relay: OutboxRelay
    units: PostgresUnitOfWorkFactory
    transport: RabbitTransport

    async def send(self, payload: Message, **wrap: object) -> Envelope:
        """Emit a command through the outbox, as a service's handler does."""
        envelope = Envelope.wrap(payload, producer="test@here", **wrap)  # type: ignore[arg-type]
        async with self.units.begin("sender", None) as uow:
            assert uow is not None
            uow.emit(envelope)
        return envelope

    async def failure_of(self, command: Envelope) -> Envelope:
        """The event the relay sent when it gave up on `command` (from the journal)."""
        journal = PostgresJournal(self.pool)

        async def caused() -> list[Envelope]:
            rows = await self.pool.fetch(
                "SELECT message_id FROM bus.journal WHERE causation_id = $1", command.message_id
            )
            entries = [await journal.get(row["message_id"]) for row in rows]
            return [entry.to_envelope() for entry in entries if entry is not None]

        async def told() -> bool:
            return bool(await caused())

        await assert_eventually(told, timeout=20, what=f"the relay gives up on {command.type}")
        [failure] = await caused()
        return failure


@pytest.fixture
async def outbox(database_url: str, rabbit_transport: RabbitTransport) -> AsyncIterator[Outbox]:
    pool = await create_pool(database_url, max_size=4)
    async with pool.acquire() as connection:
        await migrate(connection)
    relay = OutboxRelay(pool, rabbit_transport, database_url=database_url, settings=QUICK)
    await relay.start()
    yield Outbox(pool, relay, PostgresUnitOfWorkFactory(pool, encode=encode), rabbit_transport)
    await relay.stop()
    await pool.close()


async def test_an_undeliverable_command_fails_its_sender_and_shows_in_the_dead_letters(outbox: Outbox) -> None:
    command = await outbox.send(AddItem(item_id=uuid4()))

    failure = await outbox.failure_of(command)

    assert isinstance(failure.payload, CommandUndeliverable)
    assert failure.payload.command_type == AddItem.message_type
    assert failure.payload.error.code == Unroutable.code
    assert "no queue takes" in failure.payload.error.message
    assert failure.correlation_id == command.correlation_id
    row = await outbox.pool.fetchrow(
        "SELECT given_up_at, sent_at FROM bus.outbox WHERE message_id = $1", command.message_id
    )
    assert row is not None
    assert row["given_up_at"] is not None
    assert row["sent_at"] is None

    async def backlog_empty() -> bool:  # the command left the backlog (and its failure event went out)
        return await outbox.relay.pending() == 0

    await assert_eventually(backlog_empty, what="an empty backlog")

    async def dead_lettered() -> bool:
        return any(
            letter.message.message_id == str(command.message_id) for letter in await outbox.transport.list_dead()
        )

    await assert_eventually(dead_lettered, what="a copy in the dead letters, for `strata dlq list`")
    [letter] = [d for d in await outbox.transport.list_dead() if d.message.message_id == str(command.message_id)]
    assert letter.error_class == "Unroutable"
    assert "no queue takes" in letter.reason


async def test_a_saga_step_nobody_takes_fails_as_a_step_failure(outbox: Outbox) -> None:
    saga_id = uuid4()
    command = await outbox.send(AddItem(item_id=uuid4()), saga_id=saga_id, step=3)

    failure = await outbox.failure_of(command)

    assert isinstance(failure.payload, StepFailed)
    assert (failure.saga_id, failure.step) == (saga_id, 3)  # the saga correlates it as its step's reply


async def test_a_pool_attach_to_a_mistyped_host_fails_as_the_agent_would_have(outbox: Outbox) -> None:
    pool_id = uuid4()
    attach = AttachPoolToHost(pool_id=pool_id, plugin="qcow2fs", config={"path": "/x"}, host="kvm1-typo")
    command = await outbox.send(attach)

    failure = await outbox.failure_of(command)

    assert isinstance(failure.payload, PoolAttachToHostFailed)  # the storage service refuses the pool add on it
    assert (failure.payload.pool_id, failure.payload.host) == (pool_id, "kvm1-typo")


async def test_a_command_taken_late_within_the_bound_is_delivered(outbox: Outbox, database_url: str) -> None:
    # A service that starts after the command was sent still gets it while the relay retries.
    slow = RelaySettings(poll_interval=0.1, backoff_initial=0.05, backoff_max=0.1, undeliverable_after=600)
    await outbox.relay.stop()
    outbox.relay = OutboxRelay(outbox.pool, outbox.transport, database_url=database_url, settings=slow)
    await outbox.relay.start()
    command = await outbox.send(AddItem(item_id=uuid4()))
    await outbox.transport.declare_queue("late", [Binding("commands", AddItem.message_type)])

    async def sent() -> bool:
        return bool(
            await outbox.pool.fetchval(
                "SELECT sent_at IS NOT NULL FROM bus.outbox WHERE message_id = $1", command.message_id
            )
        )

    await assert_eventually(sent, timeout=20, what="the command reaches the late queue")
