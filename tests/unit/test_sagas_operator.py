"""Operator actions on sagas that need one, in memory: retry, skip, abort, compensate; each journaled."""

from datetime import UTC, datetime
from uuid import UUID

import pytest

from sagas.operator import Action, act
from sagas.records import SagaStatus
from schemas import FailedPrecondition, NotFound, uuid7
from tests.helpers import assert_eventually
from tests.sagas_fixtures import RunPlan
from tests.unit.test_sagas_engine import World, world

__all__ = ["world"]  # the fixture, used by name
pytestmark = pytest.mark.unit


async def operate(world: World, saga_id: UUID, action: Action, reason: str = "") -> str:
    async with world.store.session() as session:
        return await act(session, saga_id, action, actor="ops", reason=reason, now=datetime.now(UTC))


async def test_retry_gives_the_failed_step_one_more_attempt(world: World) -> None:
    world.participant.plan("do:b", "fail:FAILED_PRECONDITION")
    saga_id = await world.run(RunPlan(keys=["a", "b"], pivot_after=0))
    await world.ends(saga_id, SagaStatus.STUCK)
    assert await operate(world, saga_id, Action.RETRY, "fixed the pool") == "step 3 gets attempt 2"
    instance = await world.ends(saga_id, SagaStatus.COMPLETED)
    assert instance.error is None
    assert world.participant.effects == ["do:a", "do:b"]
    async with world.store.session() as session:
        events = await session.list_events(saga_id)
    assert ("operator.retry", {"by": "ops", "reason": "fixed the pool", "did": "step 3 gets attempt 2"}) in [
        (event.kind, event.detail) for event in events
    ]


async def test_skip_counts_the_failed_step_as_done(world: World) -> None:
    world.participant.plan("do:b", "fail:FAILED_PRECONDITION")
    saga_id = await world.run(RunPlan(keys=["a", "b", "c"], pivot_after=0))
    await world.ends(saga_id, SagaStatus.STUCK)
    assert await operate(world, saga_id, Action.SKIP) == "step 3 counted as done"
    await world.ends(saga_id, SagaStatus.COMPLETED)
    assert world.participant.effects == ["do:a", "do:c"]


async def test_a_failed_compensation_can_be_retried(world: World) -> None:
    world.participant.plan("do:b", "fail:INVALID_ARGUMENT")
    world.participant.plan("undo:a", "fail:TRANSIENT", "fail:TRANSIENT")
    saga_id = await world.run(RunPlan(keys=["a", "b"]))
    await world.ends(saga_id, SagaStatus.FAILED)
    await operate(world, saga_id, Action.RETRY)
    await world.ends(saga_id, SagaStatus.COMPENSATED)
    assert world.participant.effects == ["do:a", "undo:a"]


async def test_compensate_undoes_a_stuck_saga_even_after_its_pivot(world: World) -> None:
    world.participant.plan("do:b", "fail:FAILED_PRECONDITION")
    saga_id = await world.run(RunPlan(keys=["a", "b"], pivot_after=0))
    await world.ends(saga_id, SagaStatus.STUCK)
    await operate(world, saga_id, Action.COMPENSATE, "give up")
    instance = await world.ends(saga_id, SagaStatus.COMPENSATED)
    assert instance.error == "compensation asked by ops: give up"
    assert world.participant.effects == ["do:a", "undo:a"]


async def test_abort_ends_the_saga_and_lets_the_next_one_in_line_go(world: World) -> None:
    world.participant.plan("do:a", "late")
    holder = await world.run(RunPlan(keys=["a"], locks=["vm:1"]))
    await assert_eventually(lambda: len(world.participant.held) == 1, what="the holder mid-way")
    waiter = await world.run(RunPlan(keys=["b"], locks=["vm:1"], wait=30))
    assert await operate(world, holder, Action.ABORT, "hung") == "aborted; locks released"
    await world.ends(waiter, SagaStatus.COMPLETED)
    aborted = await world.ends(holder, SagaStatus.FAILED)
    assert aborted.error == "aborted by ops: hung"
    await world.participant.release_late()  # a reply to an ended saga changes nothing
    assert world.participant.effects == ["do:a", "do:b"]


async def test_actions_that_do_not_apply_are_refused_and_change_nothing(world: World) -> None:
    saga_id = await world.run(RunPlan(keys=["a"]))
    await world.ends(saga_id, SagaStatus.COMPLETED)
    with pytest.raises(FailedPrecondition, match="cannot retry a COMPLETED saga"):
        await operate(world, saga_id, Action.RETRY)
    with pytest.raises(NotFound):
        await operate(world, uuid7(), Action.ABORT)
    instance = await world.instance(saga_id)
    assert instance is not None
    assert instance.status is SagaStatus.COMPLETED
