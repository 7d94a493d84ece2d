"""Every saga step has a deadline (DESIGN §5, §10), in memory; time moves through the engine's clock, not sleeps.

A step that names no timeout gets the engine's default (`STRATA_SAGA_STEP_TIMEOUT`): a command that reaches nobody
ends in a timeout, its probe (if any) decides, and the saga compensates and frees its locks instead of holding
them for ever.
"""

from uuid import UUID

import pytest

from bus.ports import Binding
from sagas.records import SagaStatus, StepStatus
from sagas.settings import DEFAULT_STEP_TIMEOUT
from tests.helpers import assert_eventually
from tests.sagas_fixtures import Nowhere, RunPlan
from tests.unit.test_sagas_engine import World, typed, world

__all__ = ["world"]  # the fixture, used by name
pytestmark = pytest.mark.unit


async def _after_deadlines(world: World, saga_id: UUID, seq: int, status: SagaStatus) -> None:
    """Move the engine's time past the deadline of each attempt of step `seq` once it is sent, until `status`.

    Only that step's sent attempts are passed, once each: its probe and the other steps answer in (real) time.
    """
    passed: set[tuple[int, int]] = set()

    async def reached() -> bool:
        instance = await world.instance(saga_id)
        if instance is not None and instance.status is status:
            return True
        steps = await world.steps(saga_id)
        waiting = {(s.seq, s.attempt) for s in steps if s.seq == seq and s.status is StepStatus.SENT}
        if waiting - passed:
            passed.update(waiting)
            world.clock.advance(DEFAULT_STEP_TIMEOUT + 1)
        return False

    await assert_eventually(typed(reached), what=f"saga {saga_id} {status} as its deadlines pass")


async def test_a_step_whose_command_nobody_consumes_times_out_and_the_saga_compensates_and_unlocks(
    world: World,
) -> None:
    # A queue that takes the command and nobody reads: the publish succeeds, no reply ever comes.
    await world.transport.declare_queue("nobody", [Binding("commands", Nowhere.message_type)])
    saga_id = await world.run(RunPlan(keys=["a"], locks=["vm:7"], nowhere=True))

    async def sent() -> bool:
        steps = await world.steps(saga_id)
        return len(steps) == 3 and steps[2].status is StepStatus.SENT

    await assert_eventually(typed(sent), what="the step to nobody sent")
    assert (await world.steps(saga_id))[2].timeout == DEFAULT_STEP_TIMEOUT
    await _after_deadlines(world, saga_id, 3, SagaStatus.COMPENSATED)
    instance = await world.instance(saga_id)
    assert instance is not None
    assert instance.error is not None
    assert f"no reply to attempt 3 within {DEFAULT_STEP_TIMEOUT}s" in instance.error
    assert world.participant.effects == ["do:a", "undo:a"]
    async with world.store.session() as session:
        assert await session.list_locks() == []


async def test_a_timed_out_step_whose_probe_says_it_happened_moves_the_saga_on(world: World) -> None:
    world.participant.plan("do:b", "silent")  # done, but the reply never comes
    saga_id = await world.run(RunPlan(keys=["a", "b", "c"], probe=True))

    async def silent() -> bool:
        return world.participant.count("do:b") == 1

    await assert_eventually(typed(silent), what="step b done without a reply")
    await _after_deadlines(world, saga_id, 2, SagaStatus.COMPLETED)
    step = (await world.steps(saga_id))[1]
    assert [a.outcome for a in step.attempts] == ["timed out; probing; the probe found it done"]
    assert world.participant.effects == ["do:a", "do:b", "do:c"]
