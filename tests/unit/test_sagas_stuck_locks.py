"""A STUCK saga keeps its locks until an operator acts (sagas/ending.py), in memory; time moves through the clock."""

from datetime import UTC, datetime
from typing import Any

import pytest

from sagas.locks import HELD_UNTIL_AN_OPERATOR_ACTS
from sagas.memory_store import MemorySagaSession
from sagas.operator import Action, act
from sagas.records import SagaStatus
from tests.helpers import assert_eventually
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


async def test_a_saga_the_coordinator_parks_after_a_failure_keeps_its_locks_too(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.participant.plan("do:a", "late")
    saga_id = await world.run(RunPlan(keys=["a", "b"], locks=["vm:5"], lease=60))
    await assert_eventually(lambda: len(world.participant.held) == 1, what="step 1 in flight")
    original = MemorySagaSession.write

    async def broken_write(self: MemorySagaSession, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in the engine")

    monkeypatch.setattr(MemorySagaSession, "write", broken_write)
    await world.participant.release_late()
    await world.ends(saga_id, SagaStatus.STUCK)
    monkeypatch.setattr(MemorySagaSession, "write", original)
    world.clock.advance(3600)

    refused = await world.run(RunPlan(keys=["c"], locks=["vm:5"]))
    instance = await world.ends(refused, SagaStatus.COMPENSATED)
    assert instance.error is not None
    assert f"vm:5 (saga {saga_id})" in instance.error
    async with world.store.session() as session:
        assert [(held.saga_id, held.expires_at) for held in await session.list_locks()] == [
            (saga_id, HELD_UNTIL_AN_OPERATOR_ACTS)
        ]
