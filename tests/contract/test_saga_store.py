"""The SagaStore contract, run against the memory store and the PostgreSQL store."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from bus.postgres import create_pool
from sagas.locks import HELD_UNTIL_AN_OPERATOR_ACTS
from sagas.memory_store import MemorySagaStore
from sagas.ports import LockOutcome, SagaStore
from sagas.postgres_migrate import migrate_sagas
from sagas.postgres_store import PostgresSagaStore
from sagas.records import (
    Attempt,
    RetryPolicy,
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
from schemas import ErrorInfo, uuid7
from tests.helpers import assert_eventually

pytestmark = pytest.mark.contract
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def an_instance(name: str = "test.saga") -> SagaInstance:
    return SagaInstance(
        saga_id=uuid7(),
        name=name,
        version=2,
        status=SagaStatus.RUNNING,
        input=StoredMessage("sagatest.run", 1, {"keys": ["a"]}),
        correlation_id=uuid7(),
        created_at=NOW,
        updated_at=NOW,
    )


def a_step(saga_id: UUID, seq: int) -> StepRecord:
    return StepRecord(
        saga_id=saga_id,
        seq=seq,
        kind=StepKind.STEP,
        status=StepStatus.BACKING_OFF,
        command=StoredMessage("sagatest.do", 1, {"key": "a", "resource": ""}),
        compensate=StoredMessage("sagatest.undo", 1, {"key": "a"}),
        policy=RetryPolicy(attempts=4, backoff=0.1),
        timeout=2.5,
        args={"compensate_retry": RetryPolicy().to_json()},
        attempt=1,
        error=ErrorInfo(code="TRANSIENT", error_class="Transient", message="busy"),
        attempts=[Attempt(1, NOW, "TRANSIENT", NOW + timedelta(seconds=1))],
        created_at=NOW,
    )


class SagaStoreContract:
    """What every SagaStore adapter promises."""

    async def someone_waits(self, store: SagaStore) -> bool:
        """Whether a session is waiting for a saga another session holds (how to tell is the adapter's)."""
        raise NotImplementedError

    @pytest.fixture
    def store(self) -> SagaStore:
        """Each adapter's test class provides its store (a fixture of the same name)."""
        raise NotImplementedError

    async def test_an_instance_is_created_once_and_read_back(self, store: SagaStore) -> None:
        instance = an_instance()
        async with store.session() as session:
            assert await session.insert_instance(instance)
            assert not await session.insert_instance(instance)
        instance.status, instance.error, instance.pivoted, instance.fencing_token = SagaStatus.STUCK, "why", True, 7
        instance.result = StoredMessage("sagatest.done", 1, {"keys": ["a"]})
        async with store.session() as session:
            await session.save_instance(instance)
        async with store.session() as session:
            assert await session.lock_instance(instance.saga_id) == instance
            assert await session.get_instance(uuid7()) is None

    async def test_the_journal_round_trips_every_field(self, store: SagaStore) -> None:
        instance = an_instance()
        step = a_step(instance.saga_id, 1)
        pivot = StepRecord(instance.saga_id, 2, StepKind.PIVOT, StepStatus.SUCCEEDED, value={}, created_at=NOW)
        async with store.session() as session:
            await session.insert_instance(instance)
            await session.save_steps([pivot, step])
        step.status = StepStatus.SUCCEEDED
        async with store.session() as session:
            await session.save_steps([step])
            assert await session.load_steps(instance.saga_id) == [step, pivot]

    async def test_a_whole_change_is_written_and_loaded_in_one_go(self, store: SagaStore) -> None:
        instance = an_instance()
        step = a_step(instance.saga_id, 1)
        timer = Timer(instance.saga_id, 1, TimerKind.RETRY, 1, NOW)
        event = SagaEvent(instance.saga_id, NOW, "compensating", {"reason": "x"})
        async with store.session() as session:
            await session.insert_instance(instance)
            assert await session.lock_saga(instance.saga_id) == (instance, [])
            instance.status = SagaStatus.COMPENSATING
            await session.write(instance, [step], [timer], [event])
        async with store.session() as session:
            assert await session.lock_saga(instance.saga_id) == (instance, [step])
            assert await session.lock_saga(uuid7()) is None
            claimed = await session.claim_due_timer(NOW)
            assert claimed is not None
            assert (claimed.saga_id, claimed.kind) == (instance.saga_id, TimerKind.RETRY)
            assert await session.list_events(instance.saga_id) == [event]

    async def test_a_saga_locked_after_a_concurrent_change_sees_that_change(self, store: SagaStore) -> None:
        instance = an_instance()
        async with store.session() as session:
            await session.insert_instance(instance)
        holding, release = asyncio.Event(), asyncio.Event()

        async def first_reply() -> None:
            async with store.session() as session:
                await session.lock_saga(instance.saga_id)
                holding.set()
                await release.wait()
                await session.write(instance, [a_step(instance.saga_id, 1)], [], [])

        async def second_reply() -> tuple[SagaInstance, list[StepRecord]] | None:
            await holding.wait()
            async with store.session() as session:
                return await session.lock_saga(instance.saga_id)  # waits for the first to commit

        first = asyncio.create_task(first_reply())
        second = asyncio.create_task(second_reply())
        await holding.wait()
        waiting: Callable[[], Awaitable[bool] | bool] = lambda: self.someone_waits(store)  # noqa: E731
        await assert_eventually(waiting, what="the second reply waiting for the saga")
        release.set()
        await first
        loaded = await second
        assert loaded is not None
        assert [step.seq for step in loaded[1]] == [1]

    async def test_a_session_that_raises_changes_nothing(self, store: SagaStore) -> None:
        instance = an_instance()

        async def insert_then_fail() -> None:
            async with store.session() as session:
                await session.insert_instance(instance)
                raise RuntimeError("abort the transaction")

        with pytest.raises(RuntimeError):
            await insert_then_fail()
        async with store.session() as session:
            assert await session.get_instance(instance.saga_id) is None

    async def test_timers_are_claimed_once_when_due_oldest_first(self, store: SagaStore) -> None:
        saga_id = uuid7()
        assert await store.next_timer_at() is None
        async with store.session() as session:
            await session.add_timer(Timer(saga_id, 2, TimerKind.RETRY, 1, NOW + timedelta(seconds=5)))
            await session.add_timer(Timer(saga_id, 1, TimerKind.TIMEOUT, 1, NOW - timedelta(seconds=1)))
            await session.add_timer(Timer(saga_id, 3, TimerKind.WAKE, 0, NOW))
        assert await store.next_timer_at() == NOW - timedelta(seconds=1)
        async with store.session() as session:
            first = await session.claim_due_timer(NOW)
            second = await session.claim_due_timer(NOW)
            assert await session.claim_due_timer(NOW) is None
        assert first is not None
        assert (first.seq, first.kind) == (1, TimerKind.TIMEOUT)
        assert second is not None
        assert second.seq == 3
        async with store.session() as session:
            later = await session.claim_due_timer(NOW + timedelta(seconds=6))
        assert later is not None
        assert later.kind is TimerKind.RETRY

    async def test_locks_are_all_or_nothing_with_rising_tokens(self, store: SagaStore) -> None:
        first, second = uuid7(), uuid7()
        async with store.session() as session:
            taken = await session.acquire_locks(first, ["vm:1", "volume:2"], lease=60, now=NOW, queue=False)
            refused = await session.acquire_locks(second, ["volume:2", "volume:3"], lease=60, now=NOW, queue=False)
            assert taken.outcome is LockOutcome.ACQUIRED
            assert refused.outcome is LockOutcome.REFUSED
            assert [holder.resource for holder in refused.holders] == ["volume:2"]
            assert [holder.resource for holder in await session.list_locks()] == ["vm:1", "volume:2"]
            assert await session.release_locks(first) == []
            again = await session.acquire_locks(second, ["volume:2", "volume:3"], lease=60, now=NOW, queue=False)
        assert again.outcome is LockOutcome.ACQUIRED
        assert again.token is not None
        assert taken.token is not None
        assert again.token > taken.token

    async def test_a_lock_whose_lease_ran_out_goes_to_the_next_saga(self, store: SagaStore) -> None:
        old, new = uuid7(), uuid7()
        async with store.session() as session:
            await session.acquire_locks(old, ["vm:1"], lease=1, now=NOW, queue=False)
            later = NOW + timedelta(seconds=2)
            taken = await session.acquire_locks(new, ["vm:1"], lease=60, now=later, queue=False)
            assert taken.outcome is LockOutcome.ACQUIRED
            await session.renew_locks(old, later + timedelta(hours=1))  # the old holder renews nothing of it
            assert [holder.saga_id for holder in await session.list_locks()] == [new]

    async def test_a_lock_held_until_an_operator_acts_outlives_any_lease(self, store: SagaStore) -> None:
        stuck, other = uuid7(), uuid7()
        async with store.session() as session:
            await session.acquire_locks(stuck, ["vm:1"], lease=1, now=NOW, queue=False)
            await session.renew_locks(stuck, HELD_UNTIL_AN_OPERATOR_ACTS)
            refused = await session.acquire_locks(other, ["vm:1"], lease=60, now=NOW + timedelta(days=365), queue=False)
            assert refused.outcome is LockOutcome.REFUSED
            assert [(held.saga_id, held.expires_at) for held in await session.list_locks()] == [
                (stuck, HELD_UNTIL_AN_OPERATOR_ACTS)
            ]

    async def test_sagas_wait_in_line_and_are_woken_in_order(self, store: SagaStore) -> None:
        holder, first, second = uuid7(), uuid7(), uuid7()
        async with store.session() as session:
            await session.acquire_locks(holder, ["vm:1"], lease=60, now=NOW, queue=False)
            queued = await session.acquire_locks(first, ["vm:1"], lease=60, now=NOW, queue=True)
            assert queued.outcome is LockOutcome.QUEUED
            await session.acquire_locks(second, ["vm:1"], lease=60, now=NOW, queue=True)
            assert await session.release_locks(holder) == [first, second]
            # The lock is free, but `first` is ahead in line: `second` may not jump it.
            jumped = await session.acquire_locks(second, ["vm:1"], lease=60, now=NOW, queue=True)
            assert jumped.outcome is LockOutcome.QUEUED
            assert (await session.acquire_locks(first, ["vm:1"], lease=60, now=NOW, queue=True)).token is not None
            await session.release_locks(first)
            assert (await session.acquire_locks(second, ["vm:1"], lease=60, now=NOW, queue=True)).token is not None

    async def test_events_and_listing(self, store: SagaStore) -> None:
        one, two = an_instance("test.one"), an_instance("test.two")
        two.created_at = NOW + timedelta(seconds=1)
        async with store.session() as session:
            await session.insert_instance(one)
            await session.insert_instance(two)
            await session.record_event(SagaEvent(one.saga_id, NOW, "operator.retry", {"by": "ops"}))
        async with store.session() as session:
            assert [i.saga_id for i in await session.list_instances()] == [two.saga_id, one.saga_id]
            assert [i.saga_id for i in await session.list_instances(name="test.one")] == [one.saga_id]
            assert await session.list_instances(status=SagaStatus.STUCK) == []
            events = await session.list_events(one.saga_id)
        assert [(e.kind, e.detail) for e in events] == [("operator.retry", {"by": "ops"})]


class TestMemorySagaStore(SagaStoreContract):
    @pytest.fixture
    def store(self) -> SagaStore:
        return MemorySagaStore()

    async def someone_waits(self, store: SagaStore) -> bool:
        assert isinstance(store, MemorySagaStore)
        return bool(store._lock._waiters)  # sessions queue on the store's one lock


class TestPostgresSagaStore(SagaStoreContract):
    @pytest.fixture
    async def store(self, database_url: str) -> AsyncIterator[SagaStore]:
        pool = await create_pool(database_url, min_size=1, max_size=4)
        async with pool.acquire() as connection:
            assert await migrate_sagas(connection) == [1, 2, 3]
            assert await migrate_sagas(connection) == []
        yield PostgresSagaStore(pool)
        await pool.close()

    async def someone_waits(self, store: SagaStore) -> bool:
        assert isinstance(store, PostgresSagaStore)
        waiting = await store.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return bool(waiting)
