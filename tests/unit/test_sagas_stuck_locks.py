"""A STUCK saga keeps its locks until an operator acts (sagas/ending.py), in memory; time moves through the clock."""

from datetime import UTC, datetime

import pytest

from sagas.operator import Action, act
from sagas.records import SagaStatus
from tests.sagas_fixtures import RunPlan
from tests.unit.test_sagas_engine import World, world

__all__ = ["world"]  # the fixture, used by name
pytestmark = pytest.mark.unit


async def test_a_saga_left_stuck_longer_than_its_lease_still_holds_its_locks(world: World) -> None:
    world.participant.plan("do:b", "fail:FAILED_PRECONDITION")
    stuck = await world.run(RunPlan(keys=["a", "b"], locks=["vm:3"], lease=60, pivot_after=0))
    await world.ends(stuck, SagaStatus.STUCK)
    world.clock.advance(3600)  # an hour: its lease of 60 s would have lapsed long ago

    refused = await world.run(RunPlan(keys=["c"], locks=["vm:3"]))
    instance = await world.ends(refused, SagaStatus.COMPENSATED)
    assert instance.error is not None
    assert f"vm:3 (saga {stuck})" in instance.error
    async with world.store.session() as session:
        assert [(held.resource, held.saga_id) for held in await session.list_locks()] == [("vm:3", stuck)]

    async with world.store.session() as session:  # the operator acts: the locks go, the next saga gets them
        await act(session, stuck, Action.ABORT, actor="ops", now=datetime.now(UTC))
    after = await world.run(RunPlan(keys=["d"], locks=["vm:3"]))
    await world.ends(after, SagaStatus.COMPLETED)
    assert world.participant.effects == ["do:a", "do:d"]
