"""PostgresJournal on a real PostgreSQL: every message recorded, found by correlation, saga, type and time."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from bus.postgres import JournalQuery, PostgresJournal, PostgresUnitOfWorkFactory
from bus.postgres.pool import Pool
from schemas import Envelope
from tests.integration.bus_postgres_support import AddItem, ItemAdded, bus_pool, units

__all__ = ["bus_pool", "units"]  # fixtures used by name

pytestmark = pytest.mark.integration


async def test_the_journal_answers_by_correlation_saga_type_and_time(
    bus_pool: Pool, units: PostgresUnitOfWorkFactory
) -> None:
    saga_id = uuid4()
    command = Envelope.wrap(AddItem(item_id=uuid4()), saga_id=saga_id, step=3, producer="orchestrator@h1")
    reply = Envelope.wrap(ItemAdded(item_id=command.payload.item_id), cause=command, producer="items@h2")  # type: ignore[attr-defined]
    unrelated = Envelope.wrap(ItemAdded(item_id=uuid4()), producer="items@h2")
    async with units.begin("items", command) as uow:
        assert uow is not None
        uow.emit(reply)
        uow.emit(unrelated)
    journal = PostgresJournal(bus_pool)

    by_correlation = await journal.by_correlation(command.correlation_id)
    by_saga = await journal.by_saga(saga_id)
    by_type = await journal.find(JournalQuery(types=("bustest.pg.item_added",)))
    in_the_future = await journal.find(JournalQuery(since=datetime.now(UTC) + timedelta(hours=1)))
    in_the_window = await journal.find(
        JournalQuery(
            correlation_id=command.correlation_id,
            since=command.occurred_at - timedelta(seconds=1),
            until=reply.occurred_at + timedelta(seconds=1),
        )
    )

    assert [entry.message_id for entry in by_correlation] == [command.message_id, reply.message_id]
    assert [entry.message_id for entry in in_the_window] == [command.message_id, reply.message_id]
    assert [(entry.type, entry.step) for entry in by_saga] == [("bustest.pg.add_item", 3), ("bustest.pg.item_added", 3)]
    assert {entry.message_id for entry in by_type} == {reply.message_id, unrelated.message_id}
    assert in_the_future == []
    newest = await journal.find(JournalQuery(limit=2, latest=True))
    oldest = await journal.find(JournalQuery(limit=1))
    assert [entry.message_id for entry in newest] == [reply.message_id, unrelated.message_id]
    assert [entry.message_id for entry in oldest] == [command.message_id]
    assert by_correlation[1].causation_id == command.message_id
    assert by_correlation[1].producer == "items@h2"
    assert by_correlation[1].headers["saga_id"] == str(saga_id)


async def test_an_entry_turns_back_into_its_envelope(bus_pool: Pool, units: PostgresUnitOfWorkFactory) -> None:
    command = Envelope.wrap(AddItem(item_id=uuid4()), saga_id=uuid4(), step=1, producer="api@h1", fencing_token=7)
    async with units.begin("items", command) as uow:
        assert uow is not None
    journal = PostgresJournal(bus_pool)

    entry = await journal.get(command.message_id)

    assert entry is not None
    assert entry.to_envelope() == command
    assert entry.as_json()["payload"] == {"item_id": str(command.payload.item_id)}  # type: ignore[attr-defined]
    assert await journal.get(uuid4()) is None
