"""The saga engine end to end in memory: coordinator, participant, memory bus, memory store.

Every behaviour of DESIGN §5 against a participant that succeeds, fails, times out, answers twice or late.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from bus.facade import Bus
from bus.memory import MemoryTransport
from bus.memory_uow import MemoryUnitOfWorkFactory
from bus.runtime import Consumer
from sagas.coordinator import Coordinator
from sagas.memory_store import MemorySagaSession, MemorySagaStore
from sagas.records import SagaInstance, SagaStatus, StepKind, StepRecord, StepStatus
from sagas.work import command_id, saga_id_for
from schemas import Envelope
from schemas.sagas import StartSaga
from tests.bus_fixtures import bus_settings
from tests.helpers import assert_eventually
from tests.sagas_fixtures import DIVERGE, Clock, Participant, RunPlan, saga_test_messages, test_sagas

pytestmark = pytest.mark.unit


def typed(condition: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool] | bool]:
    """The union assert_eventually takes (mypy cannot infer its type variable from a coroutine function)."""
    return condition


@dataclass
class World:
    transport: MemoryTransport
    bus: Bus
    store: MemorySagaStore
    participant: Participant
    clock: Clock

    async def run(self, plan: RunPlan) -> UUID:
        envelope = Envelope.wrap(plan, producer="test")
        await self.bus.publish(envelope)
        return saga_id_for(envelope.message_id)

    async def instance(self, saga_id: UUID) -> SagaInstance | None:
        async with self.store.session() as session:
            return await session.get_instance(saga_id)

    async def steps(self, saga_id: UUID) -> list[StepRecord]:
        async with self.store.session() as session:
            return await session.load_steps(saga_id)

    async def ends(self, saga_id: UUID, status: SagaStatus, timeout: float = 10.0) -> SagaInstance:
        async def reached() -> SagaInstance | None:
            found = await self.instance(saga_id)
            return found if found is not None and found.status is status else None

        condition: Callable[[], Awaitable[SagaInstance | None] | SagaInstance | None] = reached
        instance = await assert_eventually(condition, timeout=timeout, what=f"saga {saga_id} {status}")
        assert isinstance(instance, SagaInstance)
        return instance


@pytest.fixture
async def world(namespace: str) -> AsyncIterator[World]:
    transport = MemoryTransport(bus_settings(namespace))
    await transport.start()
    bus = Bus(transport, messages=saga_test_messages)
    units = MemoryUnitOfWorkFactory(bus)
    store = MemorySagaStore()
    participant = Participant(bus)
    clock = Clock()
    coordinator = Coordinator(
        transport, units, store, sagas=test_sagas, messages=saga_test_messages, timer_poll=0.01, clock=clock
    )
    service = Consumer(
        transport,
        units,
        name="participant",
        handlers=participant.handlers(),
        messages=saga_test_messages,
    )
    await coordinator.start()
    await service.start()
    DIVERGE["on"] = False
    yield World(transport, bus, store, participant, clock)
    await coordinator.stop()
    await service.stop()
    await transport.close()
    transport.delete_namespace()


async def test_a_saga_runs_its_steps_in_order_with_derived_message_ids(world: World) -> None:
    saga_id = await world.run(RunPlan(keys=["a", "b", "c"]))
    instance = await world.ends(saga_id, SagaStatus.COMPLETED)
    assert world.participant.effects == ["do:a", "do:b", "do:c"]
    assert [e.message_id for e in world.participant.commands_of(saga_id)] == [
        command_id(saga_id, seq, 1) for seq in (1, 2, 3)
    ]
    assert instance.result is not None
    assert instance.result.payload == {"keys": ["a", "b", "c"]}


async def test_a_failure_before_the_pivot_compensates_in_reverse_order(world: World) -> None:
    world.participant.plan("do:c", "fail:FAILED_PRECONDITION")
    saga_id = await world.run(RunPlan(keys=["a", "b", "c"]))
    instance = await world.ends(saga_id, SagaStatus.COMPENSATED)
    assert world.participant.effects == ["do:a", "do:b", "undo:b", "undo:a"]
    assert instance.error is not None
    assert "step 3 (sagatest.do) failed" in instance.error


async def test_a_transient_failure_is_retried_with_a_new_attempt(world: World) -> None:
    world.participant.plan("do:b", "fail:TRANSIENT", "fail:TRANSIENT")
    saga_id = await world.run(RunPlan(keys=["a", "b"]))
    await world.ends(saga_id, SagaStatus.COMPLETED)
    step = (await world.steps(saga_id))[1]
    assert step.attempt == 3
    assert [a.outcome for a in step.attempts] == ["TRANSIENT", "TRANSIENT", "succeeded (attempt 3)"]


async def test_a_compensation_that_cannot_finish_fails_the_saga_saying_what_is_left(world: World) -> None:
    world.participant.plan("do:c", "fail:INVALID_ARGUMENT")
    world.participant.plan("undo:b", "fail:TRANSIENT", "fail:TRANSIENT")
    saga_id = await world.run(RunPlan(keys=["a", "b", "c"]))
    instance = await world.ends(saga_id, SagaStatus.FAILED)
    assert world.participant.effects == ["do:a", "do:b"]
    assert instance.error is not None
    assert "compensation of step 2 (sagatest.do) failed" in instance.error
    assert "step 2 (sagatest.do): sagatest.undo; step 1 (sagatest.do): sagatest.undo" in instance.error


async def test_after_the_pivot_failures_are_retried_forward_and_never_compensated(world: World) -> None:
    world.participant.plan("do:b", "fail:TRANSIENT", "fail:TRANSIENT")
    saga_id = await world.run(RunPlan(keys=["a", "b"], pivot_after=0))
    await world.ends(saga_id, SagaStatus.COMPLETED)
    world.participant.plan("do:d", "fail:FAILED_PRECONDITION")
    stuck_id = await world.run(RunPlan(keys=["c", "d"], pivot_after=0))
    stuck = await world.ends(stuck_id, SagaStatus.STUCK)
    assert stuck.error is not None
    assert stuck.error.startswith("failed after its pivot")
    assert "undo:c" not in world.participant.effects


async def test_a_timed_out_step_is_probed_and_not_redone_when_the_effect_happened(world: World) -> None:
    world.participant.plan("do:b", "silent")
    saga_id = await world.run(RunPlan(keys=["a", "b"], timeout=0.3, probe=True))
    await world.ends(saga_id, SagaStatus.COMPLETED)
    assert world.participant.count("do:b") == 1
    step = (await world.steps(saga_id))[1]
    assert step.attempt == 1
    assert [a.outcome for a in step.attempts] == ["timed out; probing; the probe found it done"]
    assert step.status is StepStatus.SUCCEEDED


async def test_a_timed_out_step_whose_probe_finds_nothing_is_retried(world: World) -> None:
    world.participant.plan("do:b", "lost")
    saga_id = await world.run(RunPlan(keys=["a", "b"], timeout=0.3, probe=True))
    await world.ends(saga_id, SagaStatus.COMPLETED)
    assert world.participant.count("do:b") == 1
    step = (await world.steps(saga_id))[1]
    assert step.attempt == 2
    assert step.attempts[0].outcome == "timed out; probing; the probe found it not done"


async def test_a_reply_sent_twice_settles_the_step_once(world: World) -> None:
    world.participant.plan("do:a", "twice")
    saga_id = await world.run(RunPlan(keys=["a", "b"]))
    await world.ends(saga_id, SagaStatus.COMPLETED)
    assert world.participant.effects == ["do:a", "do:b"]
    assert len(world.participant.commands_of(saga_id)) == 2


async def test_a_late_reply_to_an_earlier_attempt_is_still_the_answer(world: World) -> None:
    world.participant.plan("do:a", "late", "lost")
    saga_id = await world.run(RunPlan(keys=["a", "b"], timeout=0.5, attempts=3))

    async def second_attempt_sent() -> bool:
        return len(world.participant.commands_of(saga_id)) >= 2

    await assert_eventually(typed(second_attempt_sent), what="attempt 2 sent after the timeout")
    await world.participant.release_late()
    await world.ends(saga_id, SagaStatus.COMPLETED)
    assert world.participant.count("do:a") == 1
    first = (await world.steps(saga_id))[0]
    assert first.status is StepStatus.SUCCEEDED
    assert first.attempt == 2
    assert first.attempts[1].ended_at is not None


async def test_parallel_steps_are_all_sent_before_any_reply(world: World) -> None:
    for key in "abc":
        world.participant.plan(f"do:{key}", "late")
    saga_id = await world.run(RunPlan(keys=["a", "b", "c"], parallel=True))
    await assert_eventually(lambda: len(world.participant.held) == 3, what="three steps in flight at once")
    await world.participant.release_late()
    await world.ends(saga_id, SagaStatus.COMPLETED)


async def test_a_failed_parallel_step_waits_for_the_others_then_compensates_them(world: World) -> None:
    world.participant.plan("do:a", "late")
    world.participant.plan("do:b", "fail:ALREADY_EXISTS")
    world.participant.plan("do:c", "late")
    saga_id = await world.run(RunPlan(keys=["a", "b", "c"], parallel=True))
    await assert_eventually(lambda: len(world.participant.held) == 2, what="a and c in flight")
    instance = await world.instance(saga_id)
    assert instance is not None
    assert instance.status is SagaStatus.COMPENSATING
    assert "undo:a" not in world.participant.effects  # not while a step is still in flight
    await world.participant.release_late()
    await world.ends(saga_id, SagaStatus.COMPENSATED)
    assert world.participant.effects[2:] == ["undo:c", "undo:a"]


async def test_a_saga_that_does_not_wait_is_refused_a_held_lock(world: World) -> None:
    world.participant.plan("do:a", "late")
    holder = await world.run(RunPlan(keys=["a"], locks=["vm:1", "volume:2"]))
    await assert_eventually(lambda: len(world.participant.held) == 1, what="the holder mid-way")
    refused = await world.run(RunPlan(keys=["b"], locks=["volume:2"]))
    instance = await world.ends(refused, SagaStatus.COMPENSATED)
    assert instance.error is not None
    assert "volume:2" in instance.error
    assert str(holder) in instance.error
    await world.participant.release_late()
    await world.ends(holder, SagaStatus.COMPLETED)
    assert "do:b" not in world.participant.effects


async def test_a_saga_waits_in_line_for_a_lock_and_gets_a_newer_token(world: World) -> None:
    world.participant.plan("do:a", "late")
    holder = await world.run(RunPlan(keys=["a"], locks=["vm:1"]))
    await assert_eventually(lambda: len(world.participant.held) == 1, what="the holder mid-way")
    waiter = await world.run(RunPlan(keys=["b"], locks=["vm:1"], wait=30))

    async def waiting() -> bool:
        return any(s.kind is StepKind.LOCK and s.status is StepStatus.WAITING for s in await world.steps(waiter))

    await assert_eventually(typed(waiting), what="the second saga in line")
    await world.participant.release_late()
    await world.ends(holder, SagaStatus.COMPLETED)
    await world.ends(waiter, SagaStatus.COMPLETED)
    tokens = [e.fencing_token for e in world.participant.received]
    assert tokens[0] is not None
    assert tokens[1] is not None
    assert tokens[1] > tokens[0]


async def test_a_saga_in_line_gives_up_at_its_deadline(world: World) -> None:
    world.participant.plan("do:a", "late")
    holder = await world.run(RunPlan(keys=["a"], locks=["vm:1"]))
    await assert_eventually(lambda: len(world.participant.held) == 1, what="the holder mid-way")
    waiter = await world.run(RunPlan(keys=["b"], locks=["vm:1"], wait=0.1))
    instance = await world.ends(waiter, SagaStatus.COMPENSATED)
    assert instance.error is not None
    assert "waited 0.1s in line" in instance.error
    await world.participant.release_late()
    await world.ends(holder, SagaStatus.COMPLETED)


async def test_a_command_with_a_stale_fencing_token_is_refused(world: World) -> None:
    world.participant.plan("do:a1", "late")
    old = await world.run(RunPlan(keys=["a1", "a2"], locks=["vm:1"], lease=0.1, resource="vm:1"))
    await assert_eventually(lambda: len(world.participant.held) == 1, what="the old holder mid-way")
    # Its lease runs out while it waits: the newer saga takes the lock when its own deadline passes.
    new = await world.run(RunPlan(keys=["b1"], locks=["vm:1"], wait=0.3, resource="vm:1"))
    await world.ends(new, SagaStatus.COMPLETED)
    await world.participant.release_late()
    instance = await world.ends(old, SagaStatus.COMPENSATED)
    assert instance.error is not None
    assert "stale fencing token" in instance.error
    assert world.participant.effects == ["do:a1", "do:b1", "undo:a1"]


async def test_a_replay_that_diverges_from_the_journal_parks_the_saga(world: World) -> None:
    world.participant.plan("do:a", "late")
    saga_id = await world.run(RunPlan(keys=["a", "b"], divergent=True))
    await assert_eventually(lambda: len(world.participant.held) == 1, what="step 1 in flight")
    DIVERGE["on"] = True  # a deploy changed the code under the running saga
    await world.participant.release_late()
    instance = await world.ends(saga_id, SagaStatus.STUCK)
    assert instance.error == (
        "replay diverged at step 1: the code sends sagatest.other where the journal has sagatest.do"
    )
    assert world.participant.effects == ["do:a"]


async def test_a_saga_the_coordinator_fails_on_is_parked_not_left_waiting(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.participant.plan("do:a", "late")
    saga_id = await world.run(RunPlan(keys=["a", "b"]))
    await assert_eventually(lambda: len(world.participant.held) == 1, what="step 1 in flight")
    original = MemorySagaSession.write

    async def broken_write(self: MemorySagaSession, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in the engine")

    monkeypatch.setattr(MemorySagaSession, "write", broken_write)
    await world.participant.release_late()
    instance = await world.ends(saga_id, SagaStatus.STUCK)
    assert instance.error == "the coordinator failed on it: RuntimeError: a bug in the engine"
    monkeypatch.setattr(MemorySagaSession, "write", original)


async def test_a_saga_started_by_name_sleeps_durably_and_queries(world: World) -> None:
    start = StartSaga(name="sagatest.check_later", input_type="sagatest.run_later", input={"keys": ["q"]})
    envelope = Envelope.wrap(start, producer="test")
    await world.bus.publish(envelope)
    saga_id = saga_id_for(envelope.message_id)
    instance = await world.ends(saga_id, SagaStatus.COMPLETED)
    assert instance.name == "sagatest.check_later"
    assert instance.result is not None
    assert instance.result.payload == {"keys": ["True"]}
    steps = await world.steps(saga_id)
    assert [(step.kind, step.status) for step in steps] == [
        (StepKind.STEP, StepStatus.SUCCEEDED),
        (StepKind.SLEEP, StepStatus.SUCCEEDED),
        (StepKind.QUERY, StepStatus.SUCCEEDED),
    ]


async def test_a_start_by_an_unknown_name_starts_nothing(world: World) -> None:
    start = StartSaga(name="sagatest.nothing", input_type="sagatest.run", input={"keys": []})
    envelope = Envelope.wrap(start, producer="test")
    await world.bus.publish(envelope)

    async def dead_letters() -> bool:
        return len(await world.transport.list_dead()) == 1

    await assert_eventually(typed(dead_letters), what="the start dead-lettered")
    assert (await world.transport.list_dead())[0].reason == "no saga sagatest.nothing is registered"
    assert await world.instance(saga_id_for(envelope.message_id)) is None


async def test_a_step_that_timed_out_with_nothing_to_ask_is_compensated_too(world: World) -> None:
    world.participant.plan("do:b", "silent")
    saga_id = await world.run(RunPlan(keys=["a", "b"], timeout=0.1, attempts=1))
    instance = await world.ends(saga_id, SagaStatus.COMPENSATED)
    assert instance.error is not None
    assert "no reply to attempt 1 within 0.1s" in instance.error
    # The effect may have happened (here it did): its compensation runs, in reverse order with the others.
    assert world.participant.effects == ["do:a", "do:b", "undo:b", "undo:a"]
