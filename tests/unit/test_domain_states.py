"""Every legal and every illegal transition of the pool, volume and snapshot state machines (DESIGN §7)."""

from enum import StrEnum
from itertools import product
from uuid import uuid4

import pytest

from schemas.errors import FailedPrecondition
from schemas.snapshot import SnapshotState
from schemas.storage import PoolState, VolumeOperation, VolumeState
from services.domain.pools import POOL_STATES, PoolEvent, accepts_allocations
from services.domain.snapshots import SNAPSHOT_STATES, USABLE_SNAPSHOT_STATES, SnapshotEvent
from services.domain.states import StateMachine
from services.domain.volumes import VOLUME_STATES, VolumeEvent, operation_event, operation_state

pytestmark = pytest.mark.unit

P, PE = PoolState, PoolEvent
POOL_LEGAL = {
    (P.INITIAL, PE.OPERATION_SUCCEEDED): P.UP,
    (P.INITIAL, PE.OPERATION_FAILED): P.REMOVED,
    (P.INITIAL, PE.DELETE_REQUESTED): P.REMOVED,
    (P.UP, PE.DISABLE_REQUESTED): P.DISABLED,
    (P.UP, PE.MAINTENANCE_REQUESTED): P.PREPARE_FOR_MAINTENANCE,
    (P.DISABLED, PE.ENABLE_REQUESTED): P.UP,
    (P.DISABLED, PE.DELETE_REQUESTED): P.REMOVED,
    (P.PREPARE_FOR_MAINTENANCE, PE.OPERATION_SUCCEEDED): P.MAINTENANCE,
    (P.PREPARE_FOR_MAINTENANCE, PE.OPERATION_FAILED): P.ERROR_IN_MAINTENANCE,
    (P.PREPARE_FOR_MAINTENANCE, PE.CANCEL_MAINTENANCE_REQUESTED): P.CANCEL_MAINTENANCE,
    (P.MAINTENANCE, PE.CANCEL_MAINTENANCE_REQUESTED): P.CANCEL_MAINTENANCE,
    (P.MAINTENANCE, PE.DELETE_REQUESTED): P.REMOVED,
    (P.ERROR_IN_MAINTENANCE, PE.MAINTENANCE_REQUESTED): P.PREPARE_FOR_MAINTENANCE,
    (P.ERROR_IN_MAINTENANCE, PE.CANCEL_MAINTENANCE_REQUESTED): P.CANCEL_MAINTENANCE,
    (P.ERROR_IN_MAINTENANCE, PE.DELETE_REQUESTED): P.REMOVED,
    (P.CANCEL_MAINTENANCE, PE.OPERATION_SUCCEEDED): P.UP,
    (P.CANCEL_MAINTENANCE, PE.OPERATION_FAILED): P.ERROR_IN_MAINTENANCE,
}

V, VE = VolumeState, VolumeEvent
VOLUME_LEGAL = {
    (V.ALLOCATED, VE.CREATE_REQUESTED): V.CREATING,
    (V.ALLOCATED, VE.DESTROY_REQUESTED): V.DESTROY,
    (V.CREATING, VE.OPERATION_SUCCEEDED): V.READY,
    (V.CREATING, VE.OPERATION_FAILED): V.ALLOCATED,
    (V.READY, VE.RESIZE_REQUESTED): V.RESIZING,
    (V.READY, VE.SNAPSHOT_REQUESTED): V.SNAPSHOTTING,
    (V.READY, VE.MIGRATION_REQUESTED): V.MIGRATING,
    (V.READY, VE.REVERT_SNAPSHOT_REQUESTED): V.REVERT_SNAPSHOTTING,
    (V.READY, VE.DESTROY_REQUESTED): V.DESTROY,
    **{
        (busy, outcome): V.READY
        for busy in (V.RESIZING, V.SNAPSHOTTING, V.MIGRATING, V.REVERT_SNAPSHOTTING)
        for outcome in (VE.OPERATION_SUCCEEDED, VE.OPERATION_FAILED)
    },
    (V.DESTROY, VE.EXPUNGE_REQUESTED): V.EXPUNGING,
    (V.EXPUNGING, VE.OPERATION_SUCCEEDED): V.EXPUNGED,
    (V.EXPUNGING, VE.OPERATION_FAILED): V.DESTROY,
}

S, SE = SnapshotState, SnapshotEvent
SNAPSHOT_LEGAL = {
    (S.ALLOCATED, SE.CREATE_REQUESTED): S.CREATING,
    (S.ALLOCATED, SE.DESTROY_REQUESTED): S.DESTROYING,
    (S.CREATING, SE.OPERATION_SUCCEEDED): S.CREATED_ON_PRIMARY,
    (S.CREATING, SE.OPERATION_FAILED): S.ERROR,
    (S.CREATED_ON_PRIMARY, SE.BACKUP_REQUESTED): S.BACKING_UP,
    (S.CREATED_ON_PRIMARY, SE.DESTROY_REQUESTED): S.DESTROYING,
    (S.BACKING_UP, SE.OPERATION_SUCCEEDED): S.BACKED_UP,
    (S.BACKING_UP, SE.OPERATION_FAILED): S.CREATED_ON_PRIMARY,
    (S.BACKED_UP, SE.DESTROY_REQUESTED): S.DESTROYING,
    (S.DESTROYING, SE.OPERATION_SUCCEEDED): S.DESTROYED,
    (S.DESTROYING, SE.OPERATION_FAILED): S.ERROR,
    (S.ERROR, SE.DESTROY_REQUESTED): S.DESTROYING,
}

MACHINES: list[
    tuple[StateMachine[StrEnum, StrEnum], type[StrEnum], type[StrEnum], dict[tuple[StrEnum, StrEnum], StrEnum]]
] = [
    (POOL_STATES, PoolState, PoolEvent, POOL_LEGAL),  # type: ignore[list-item]
    (VOLUME_STATES, VolumeState, VolumeEvent, VOLUME_LEGAL),  # type: ignore[list-item]
    (SNAPSHOT_STATES, SnapshotState, SnapshotEvent, SNAPSHOT_LEGAL),  # type: ignore[list-item]
]
ALL_PAIRS = [
    pytest.param(machine, state, event, legal, id=f"{machine.kind}-{state}-{event}")
    for machine, states, events, legal in MACHINES
    for state, event in product(states, events)
]


@pytest.mark.parametrize(("machine", "state", "event", "legal"), ALL_PAIRS)
def test_every_transition_is_legal_or_refused_naming_object_state_and_event(
    machine: StateMachine[StrEnum, StrEnum],
    state: StrEnum,
    event: StrEnum,
    legal: dict[tuple[StrEnum, StrEnum], StrEnum],
) -> None:
    object_id = uuid4()
    if (state, event) in legal:
        assert machine.next_state(object_id, state, event) is legal[(state, event)]
        assert machine.allows(state, event)
        return
    assert not machine.allows(state, event)
    with pytest.raises(FailedPrecondition) as refused:
        machine.next_state(object_id, state, event)
    text = str(refused.value)
    assert f"{machine.kind} {object_id} is {state}" in text
    assert f"{event} is not allowed" in text
    assert refused.value.field == "state"


def test_the_refusal_says_what_the_state_accepts() -> None:
    with pytest.raises(FailedPrecondition, match=r"it accepts ResizeRequested, SnapshotRequested"):
        VOLUME_STATES.next_state("v1", V.READY, VE.CREATE_REQUESTED)
    with pytest.raises(FailedPrecondition, match="Expunged is final"):
        VOLUME_STATES.next_state("v1", V.EXPUNGED, VE.DESTROY_REQUESTED)


@pytest.mark.parametrize(
    ("machine", "finals"),
    [(POOL_STATES, {P.REMOVED}), (VOLUME_STATES, {V.EXPUNGED}), (SNAPSHOT_STATES, {S.DESTROYED})],
)
def test_only_the_end_states_are_final(machine: StateMachine[StrEnum, StrEnum], finals: set[StrEnum]) -> None:
    states = {state for state, _ in machine.transitions.items()}
    assert {state for state in states if machine.is_final(state)} == finals


@pytest.mark.parametrize(("machine", "states"), [(m, s) for m, s, _, _ in MACHINES])
def test_every_state_has_a_row(machine: StateMachine[StrEnum, StrEnum], states: type[StrEnum]) -> None:
    assert set(machine.transitions) == set(states)


def test_every_non_final_state_reaches_the_end() -> None:
    for machine, _states, _events, legal in MACHINES:
        final = next(state for state in machine.transitions if machine.is_final(state))
        reaches = {final}
        changed = True
        while changed:
            changed = False
            for (source, _event), target in legal.items():
                if target in reaches and source not in reaches:
                    reaches.add(source)
                    changed = True
        assert reaches == set(machine.transitions), f"{machine.kind}: stuck states {set(machine.transitions) - reaches}"


def test_only_an_up_pool_takes_allocations() -> None:
    assert [state for state in PoolState if accepts_allocations(state)] == [PoolState.UP]


@pytest.mark.parametrize(
    ("operation", "event", "state"),
    [
        (VolumeOperation.MIGRATE, VE.MIGRATION_REQUESTED, V.MIGRATING),
        (VolumeOperation.SNAPSHOT, VE.SNAPSHOT_REQUESTED, V.SNAPSHOTTING),
        (VolumeOperation.REVERT_SNAPSHOT, VE.REVERT_SNAPSHOT_REQUESTED, V.REVERT_SNAPSHOTTING),
    ],
)
def test_a_volume_operation_holds_a_ready_volume_and_releases_it(
    operation: VolumeOperation, event: VolumeEvent, state: VolumeState
) -> None:
    assert operation_event(operation) is event
    assert operation_state(operation) is state
    held = VOLUME_STATES.next_state("v", V.READY, operation_event(operation))
    assert held is state
    assert VOLUME_STATES.next_state("v", held, VE.OPERATION_FAILED) is V.READY
    with pytest.raises(FailedPrecondition):
        VOLUME_STATES.next_state("v", held, VE.SNAPSHOT_REQUESTED)


def test_only_whole_snapshots_are_usable() -> None:
    assert {S.CREATED_ON_PRIMARY, S.BACKING_UP, S.BACKED_UP} == USABLE_SNAPSHOT_STATES
