"""The coordinator's lazily begun units of work (sagas.postgres_units) on the real PostgreSQL.

A start or a reply is read without a lock and committed in one round trip guarded by the inbox row and the saga's
revision: a duplicate changes nothing, and a saga changed between the read and the commit is handled again.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import pytest

from bus.codec import encode
from bus.memory import MemoryTransport
from bus.ports import Handler, UnitOfWork
from bus.postgres import PostgresUnitOfWorkFactory, create_pool, migrate
from bus.postgres.pool import Pool
from sagas.coordinator import Coordinator
from sagas.postgres_migrate import migrate_sagas
from sagas.postgres_store import PostgresSagaStore
from sagas.postgres_units import SagaUnitOfWork, SagaUnitOfWorkFactory
from sagas.records import SagaStatus, StepStatus
from sagas.work import command_id, saga_id_for
from schemas import Envelope, StrataError
from schemas.sagas import StepSucceeded
from tests.bus_fixtures import bus_settings
from tests.sagas_fixtures import RunPlan, saga_test_messages, test_sagas

pytestmark = pytest.mark.integration


@dataclass
class Stack:
    pool: Pool
    store: PostgresSagaStore
    coordinator: Coordinator

    @property
    def units(self) -> SagaUnitOfWorkFactory:
        assert isinstance(self.coordinator.units, SagaUnitOfWorkFactory)
        return self.coordinator.units

    async def start(self, envelope: Envelope) -> bool:
        """Handle a start; True if it proved a duplicate (as the consumer's metrics are told)."""
        assert isinstance(envelope.payload, RunPlan)
        return await self._handle(envelope, self.coordinator.start_saga)

    async def reply(self, envelope: Envelope) -> bool:
        """Handle a step reply; True if it proved a duplicate."""
        assert isinstance(envelope.payload, StepSucceeded)
        return await self._handle(envelope, self.coordinator.take_reply)

    async def _handle(self, envelope: Envelope, handler: Handler) -> bool:
        context = self.units.begin(self.coordinator.name, envelope)
        async with context as uow:
            assert uow is not None
            await handler(envelope.payload, envelope, uow)
        return context.duplicate

    async def sent(self, saga_id: UUID) -> list[tuple[str, int]]:
        rows = await self.pool.fetch(
            "SELECT type, step FROM bus.journal WHERE saga_id = $1 AND producer = 'saga-coordinator' ORDER BY step",
            saga_id,
        )
        return [(row["type"], row["step"]) for row in rows]


@pytest.fixture
async def stack(database_url: str, namespace: str) -> AsyncIterator[Stack]:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    async with pool.acquire() as connection:
        await migrate(connection)
        await migrate_sagas(connection)
    store = PostgresSagaStore(pool)
    transport = MemoryTransport(bus_settings(namespace))  # never started: the units are driven by hand
    units = PostgresUnitOfWorkFactory(pool, encode=encode)
    coordinator = Coordinator(transport, units, store, sagas=test_sagas, messages=saga_test_messages)
    yield Stack(pool, store, coordinator)
    await pool.close()


def reply_to(saga_id: UUID, step: int) -> Envelope:
    command = Envelope(
        message_id=command_id(saga_id, step, 1),
        type="sagatest.do",
        version=1,
        correlation_id=saga_id,
        saga_id=saga_id,
        step=step,
        producer="saga-coordinator",
        payload=saga_test_messages.decode("sagatest.do", 1, '{"key": "k"}'),
    )
    return Envelope.wrap(StepSucceeded(result={}), cause=command, producer="participant@test")


async def test_the_coordinator_begins_its_units_lazily_on_postgres(stack: Stack) -> None:
    envelope = Envelope.wrap(RunPlan(keys=["a", "b"]), producer="test")
    async with stack.units.begin(stack.coordinator.name, envelope) as uow:
        assert isinstance(uow, SagaUnitOfWork)
        assert not uow.begun
        assert not uow.connection.is_in_transaction()


async def test_a_start_and_its_duplicate_commit_once(stack: Stack) -> None:
    envelope = Envelope.wrap(RunPlan(keys=["a", "b"]), producer="test")
    saga_id = saga_id_for(envelope.message_id)
    assert await stack.start(envelope) is False
    assert await stack.start(envelope) is True  # redelivered: the inbox row fails the one-round-trip commit
    assert await stack.sent(saga_id) == [("sagatest.do", 1)]
    assert await stack.pool.fetchval("SELECT count(*) FROM bus.outbox") == 1
    assert await stack.pool.fetchval("SELECT revision FROM sagas.instances WHERE saga_id = $1", saga_id) == 1


async def test_a_reply_and_its_duplicate_advance_the_saga_once(stack: Stack) -> None:
    envelope = Envelope.wrap(RunPlan(keys=["a", "b"]), producer="test")
    saga_id = saga_id_for(envelope.message_id)
    await stack.start(envelope)
    reply = reply_to(saga_id, 1)
    assert await stack.reply(reply) is False
    assert await stack.reply(reply) is True
    assert await stack.sent(saga_id) == [("sagatest.do", 1), ("sagatest.do", 2)]
    async with stack.store.session() as session:
        steps = await session.load_steps(saga_id)
    assert [step.status for step in steps] == [StepStatus.SUCCEEDED, StepStatus.SENT]


async def test_a_saga_changed_between_the_read_and_the_commit_is_handled_again(stack: Stack) -> None:
    envelope = Envelope.wrap(RunPlan(keys=["a", "b"]), producer="test")
    saga_id = saga_id_for(envelope.message_id)
    await stack.start(envelope)
    reply = reply_to(saga_id, 1)
    redone = False
    async with stack.units.begin(stack.coordinator.name, reply) as uow:
        assert isinstance(uow, SagaUnitOfWork)
        payload = reply.payload
        assert isinstance(payload, StepSucceeded)
        await stack.coordinator.take_reply(payload, reply, uow)
        assert not uow.begun  # read at revision 1, to commit in one round trip
        assert uow.redo is not None
        redo = uow.redo

        async def counted(again: UnitOfWork) -> None:
            nonlocal redone
            redone = True
            await redo(again)

        uow.redo = counted
        # Meanwhile another coordinator (or an operator) writes the saga.
        async with stack.store.session() as session:
            instance = await session.lock_instance(saga_id)
            assert instance is not None
            instance.error = "touched"
            await session.save_instance(instance)
    assert redone
    assert await stack.sent(saga_id) == [("sagatest.do", 1), ("sagatest.do", 2)]
    row = await stack.pool.fetchrow("SELECT revision, error FROM sagas.instances WHERE saga_id = $1", saga_id)
    assert row is not None
    assert (row["revision"], row["error"]) == (3, "touched")


async def test_a_failing_one_round_trip_commit_changes_nothing(stack: Stack) -> None:
    envelope = Envelope.wrap(RunPlan(keys=["a"]), producer="test")
    saga_id = saga_id_for(envelope.message_id)
    await stack.start(envelope)
    reply = reply_to(saga_id, 1)

    async def handle() -> None:
        async with stack.units.begin(stack.coordinator.name, reply) as uow:
            assert isinstance(uow, SagaUnitOfWork)
            payload = reply.payload
            assert isinstance(payload, StepSucceeded)
            await stack.coordinator.take_reply(payload, reply, uow)
            uow.defer("SELECT 1 / 0")  # the commit fails after the saga's writes

    with pytest.raises(StrataError):
        await handle()
    instance = await stack.pool.fetchrow("SELECT status, revision FROM sagas.instances WHERE saga_id = $1", saga_id)
    assert instance is not None
    assert (instance["status"], instance["revision"]) == (SagaStatus.RUNNING.value, 1)
    assert await stack.pool.fetchval("SELECT count(*) FROM bus.inbox WHERE message_id = $1", reply.message_id) == 0


async def test_a_start_whose_saga_exists_changes_nothing_even_past_the_inbox(stack: Stack) -> None:
    envelope = Envelope.wrap(RunPlan(keys=["a", "b"]), producer="test")
    saga_id = saga_id_for(envelope.message_id)
    await stack.start(envelope)
    await stack.pool.execute("DELETE FROM bus.inbox")  # its inbox row is gone (retention), the saga is not
    await stack.start(envelope)  # the INSERT fails the one-round-trip commit; the locking way finds the saga
    assert await stack.sent(saga_id) == [("sagatest.do", 1)]
    assert await stack.pool.fetchval("SELECT revision FROM sagas.instances WHERE saga_id = $1", saga_id) == 1
    assert await stack.pool.fetchval("SELECT count(*) FROM bus.inbox") == 1


async def test_a_reply_to_a_command_this_coordinator_sent_needs_no_read(stack: Stack) -> None:
    envelope = Envelope.wrap(RunPlan(keys=["a", "b"]), producer="test")
    saga_id = saga_id_for(envelope.message_id)
    await stack.start(envelope)
    # A write behind the store's back (it keeps the revision): the reply works on the saga as this process wrote it.
    await stack.pool.execute("UPDATE sagas.instances SET error = 'unseen' WHERE saga_id = $1", saga_id)
    await stack.reply(reply_to(saga_id, 1))
    row = await stack.pool.fetchrow("SELECT revision, error FROM sagas.instances WHERE saga_id = $1", saga_id)
    assert row is not None
    assert (row["revision"], row["error"]) == (2, None)
    assert await stack.sent(saga_id) == [("sagatest.do", 1), ("sagatest.do", 2)]


async def test_replicas_take_turns_on_a_saga_without_using_stale_state(stack: Stack) -> None:
    other = Stack(
        stack.pool,
        stack.store,
        Coordinator(
            stack.coordinator.consumer.transport,
            PostgresUnitOfWorkFactory(stack.pool, encode=encode),
            stack.store,
            sagas=test_sagas,
            messages=saga_test_messages,
        ),
    )
    envelope = Envelope.wrap(RunPlan(keys=["a", "b", "c"]), producer="test")
    saga_id = saga_id_for(envelope.message_id)
    await stack.start(envelope)  # this replica remembers the saga at revision 1
    await other.reply(reply_to(saga_id, 1))  # the other one reads it, writes revision 2
    await stack.reply(reply_to(saga_id, 2))  # not a reply to what this one sent: it reads revision 2
    await other.reply(reply_to(saga_id, 3))
    instance = await stack.pool.fetchrow("SELECT status, revision FROM sagas.instances WHERE saga_id = $1", saga_id)
    assert instance is not None
    assert (instance["status"], instance["revision"]) == (SagaStatus.COMPLETED.value, 4)
    assert await stack.sent(saga_id) == [("sagatest.do", 1), ("sagatest.do", 2), ("sagatest.do", 3)]
