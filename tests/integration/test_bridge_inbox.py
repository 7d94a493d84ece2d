"""The bridge's inbox rule in one statement (`records.open_operations`) on the real PostgreSQL: per base key, the
first request of a batch that is not a duplicate opens the next operation; a late redelivery in the same batch does
not hide a new request after it; two transactions opening the same operation meet on its key."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from schemas.cloudstack import ActionEvent, Status
from services.bridge import records
from services.bridge.bootstrap import migrate_bridge
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator["asyncpg.Pool[asyncpg.Record]"]:
    connection = await asyncpg.connect(database_url)
    try:
        await migrate_bridge(connection)
    finally:
        await connection.close()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    try:
        yield pool
    finally:
        await pool.close()


def asked(order: int, volume: uuid.UUID, status: Status, at: datetime) -> records.Asked:
    event = ActionEvent(
        status=status,
        event="VOLUME.DELETE",
        entity="Volume",
        entity_uuid=volume,
        entities={"Volume": volume},
        occurred_at=at,
    )
    return records.Asked(order, f"VOLUME.DELETE:{volume}", event, "Volume", volume, "volume.delete")


async def test_the_first_request_that_is_not_a_duplicate_opens_the_operation(
    db: "asyncpg.Pool[asyncpg.Record]",
) -> None:
    volume = uuid.uuid4()
    key = f"VOLUME.DELETE:{volume}"
    async with db.acquire() as connection, connection.transaction():
        latest, opened = await records.open_operations(
            connection,
            [asked(0, volume, Status.SCHEDULED, T0), asked(1, volume, Status.STARTED, T0 + timedelta(seconds=1))],
        )
    assert latest == {}
    assert opened[key] == records.Opened(0, f"{key}#1", 1, inserted=True)
    stored = await db.fetchval("SELECT correlation_id FROM bridge.operations WHERE operation_key = $1", f"{key}#1")
    assert stored == opened[key].correlation_id == records.correlation_of(f"{key}#1")  # SQL's md5 is Python's

    async with db.acquire() as connection, connection.transaction():
        await records.settle_operation(connection, f"{key}#1", succeeded=True, reason=None, answer=None)
    settled_at = await db.fetchval("SELECT settled_at FROM bridge.operations WHERE operation_key = $1", f"{key}#1")
    # A late redelivery of the Started (asked before the settlement), then CloudStack asking again after it.
    async with db.acquire() as connection, connection.transaction():
        latest, opened = await records.open_operations(
            connection,
            [
                asked(0, volume, Status.STARTED, T0 + timedelta(seconds=1)),
                asked(1, volume, Status.SCHEDULED, settled_at + timedelta(seconds=5)),
            ],
        )
    assert latest[key].operation_key == f"{key}#1"
    assert records.is_duplicate(latest[key], T0 + timedelta(seconds=1))
    assert opened[key] == records.Opened(1, f"{key}#2", 2, inserted=True)


async def test_two_transactions_opening_one_operation_meet_on_its_key(db: "asyncpg.Pool[asyncpg.Record]") -> None:
    volume = uuid.uuid4()
    key = f"VOLUME.DELETE:{volume}"
    first, second = await db.acquire(), await db.acquire()
    try:
        await first.execute("BEGIN")
        await second.execute("BEGIN")
        _, won = await records.open_operations(first, [asked(0, volume, Status.STARTED, T0)])
        pending = asyncio.create_task(records.open_operations(second, [asked(0, volume, Status.STARTED, T0)]))
        waiting = second.get_server_pid()

        async def blocked() -> bool:  # the second insert waits on the first's uncommitted key
            event = await db.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", waiting)
            return bool(event == "Lock")

        await assert_eventually(blocked, timeout=30, interval=0.02, what="the second transaction waiting")
        await first.execute("COMMIT")
        _, lost = await pending
        await second.execute("COMMIT")
    finally:
        await db.release(first)
        await db.release(second)
    assert won[key].inserted
    assert not lost[key].inserted
    assert lost[key].operation_key == won[key].operation_key
    assert await db.fetchval("SELECT count(*) FROM bridge.operations WHERE base_key = $1", key) == 1
