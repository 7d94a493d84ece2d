"""The saga's write of one unit of work is rendered twice: with parameters (`PostgresSagaSession.write` in a session
of its own) and with literals (`sagas.postgres_literals.deferred_write`, which travels with a unit of work's COMMIT).
A property test: for any change, both leave the same rows."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.postgres import create_pool
from bus.postgres.pool import Pool
from sagas.postgres_literals import deferred_write
from sagas.postgres_migrate import migrate_sagas
from sagas.postgres_store import PostgresSagaStore
from sagas.records import (
    SagaEvent,
    SagaInstance,
    SagaStatus,
    StepKind,
    StepRecord,
    StepStatus,
    StoredMessage,
    Timer,
    TimerKind,
)

pytestmark = pytest.mark.integration

PARAMETERS, LITERALS = "sagas_params", "sagas_literals"
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=20) | st.text(
    st.sampled_from("'\\\"$-*/;\nEe"), max_size=8
)
JSON = st.dictionaries(TEXT, st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT, max_size=4)
TIMES = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.just(UTC) | st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-600, 600)),
)
MESSAGES = st.builds(StoredMessage, type=st.just("sagatest.plan"), version=st.integers(1, 3), payload=JSON)


@st.composite
def changes(draw: st.DrawFn) -> tuple[SagaInstance, list[StepRecord], list[Timer], list[SagaEvent]]:
    """A new saga, and one write of the engine's on it: its state, journal entries, timers and audit events."""
    saga_id = uuid4()
    instance = SagaInstance(
        saga_id=saga_id,
        name=draw(TEXT),
        version=draw(st.integers(1, 5)),
        status=draw(st.sampled_from(SagaStatus)),
        input=draw(MESSAGES),
        correlation_id=uuid4(),
        result=draw(st.none() | MESSAGES),
        error=draw(st.none() | TEXT),
        pivoted=draw(st.booleans()),
        fencing_token=draw(st.none() | st.integers(0, 2**62)),
        created_at=draw(TIMES),
        updated_at=draw(TIMES),
    )
    seqs = draw(st.lists(st.integers(0, 50), unique=True, max_size=4))
    steps = [
        StepRecord(
            saga_id=saga_id,
            seq=seq,
            kind=draw(st.sampled_from(StepKind)),
            status=draw(st.sampled_from(StepStatus)),
            command=draw(st.none() | MESSAGES),
            args=draw(JSON),
            attempt=draw(st.integers(0, 5)),
        )
        for seq in seqs
    ]
    timers = [
        Timer(saga_id, draw(st.integers(0, 50)), draw(st.sampled_from(TimerKind)), draw(st.integers(0, 9)), draw(TIMES))
        for _ in range(draw(st.integers(0, 3)))
    ]
    events = [SagaEvent(saga_id, draw(TIMES), draw(TEXT), draw(JSON)) for _ in range(draw(st.integers(0, 3)))]
    return instance, steps, timers, events


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[asyncio.Runner, Pool]]:
    """The saga tables twice in one database, on an event loop of the test's own (shared by the examples)."""
    with asyncio.Runner() as runner:
        pool = runner.run(create_pool(database_url, max_size=2))
        try:

            async def migrate() -> None:
                async with pool.acquire() as connection:
                    for schema in (PARAMETERS, LITERALS):
                        await migrate_sagas(connection, schema)

            runner.run(migrate())
            yield runner, pool
        finally:
            runner.run(pool.close())


async def _rows(pool: Pool, schema: str, saga_id: UUID) -> dict[str, list[asyncpg.Record]]:
    queries = {
        "instances": f"SELECT * FROM {schema}.instances WHERE saga_id = $1",
        "steps": f"SELECT saga_id, seq, kind, status, record FROM {schema}.steps WHERE saga_id = $1 ORDER BY seq",
        "timers": f"SELECT saga_id, seq, kind, attempt, due_at FROM {schema}.timers WHERE saga_id = $1 "
        "ORDER BY seq, kind, attempt, due_at",
        "events": f"SELECT saga_id, at, kind, detail FROM {schema}.events WHERE saga_id = $1 "
        "ORDER BY at, kind, detail::text",
    }
    return {table: list(await pool.fetch(query, saga_id)) for table, query in queries.items()}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=changes())
def test_both_renderings_of_the_saga_write_leave_the_same_rows(
    stores: tuple[asyncio.Runner, Pool], change: tuple[SagaInstance, list[StepRecord], list[Timer], list[SagaEvent]]
) -> None:
    runner, pool = stores
    instance, steps, timers, events = change

    async def write_both() -> tuple[dict[str, list[asyncpg.Record]], dict[str, list[asyncpg.Record]]]:
        async with PostgresSagaStore(pool, schema=PARAMETERS).session() as session:
            assert await session.insert_instance(instance)
            await session.write(instance, steps, timers, events)
        async with PostgresSagaStore(pool, schema=LITERALS).session() as session:
            assert await session.insert_instance(instance)
        await pool.execute(deferred_write(LITERALS, instance, steps, timers, events))
        return await _rows(pool, PARAMETERS, instance.saga_id), await _rows(pool, LITERALS, instance.saga_id)

    with_parameters, with_literals = runner.run(write_both())
    assert with_literals == with_parameters


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=changes())
def test_a_new_saga_written_at_once_equals_an_insert_and_a_write(
    stores: tuple[asyncio.Runner, Pool], change: tuple[SagaInstance, list[StepRecord], list[Timer], list[SagaEvent]]
) -> None:
    runner, pool = stores
    instance, steps, timers, events = change

    async def write_both() -> tuple[dict[str, list[asyncpg.Record]], dict[str, list[asyncpg.Record]]]:
        async with PostgresSagaStore(pool, schema=PARAMETERS).session() as session:
            assert await session.insert_instance(instance)
            await session.write(instance, steps, timers, events)
        await pool.execute(deferred_write(LITERALS, instance, steps, timers, events, created=True))
        return await _rows(pool, PARAMETERS, instance.saga_id), await _rows(pool, LITERALS, instance.saga_id)

    with_parameters, with_literals = runner.run(write_both())
    assert with_literals == with_parameters
