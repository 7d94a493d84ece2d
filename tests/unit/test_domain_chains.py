"""Snapshot chains: full or delta next (`snapshot.delta.max`), retention beyond maxsnaps, deletes and coalescing."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from schemas.errors import FailedPrecondition, InvalidArgument, NotFound
from schemas.snapshot import SnapshotKind
from services.domain.chains import (
    Chain,
    ChainNode,
    CoalesceTask,
    DeletePlan,
    coalesce_tasks,
    longest_delta_run,
    needs_coalescing,
    orphaned_hidden,
    plan_delete,
    plan_next_snapshot,
    retention_victims,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FULL, DELTA = SnapshotKind.FULL, SnapshotKind.DELTA


def sid(number: int) -> UUID:
    return UUID(int=number)


def linear(length: int, *, hidden: frozenset[int] = frozenset()) -> list[ChainNode]:
    """Snapshot 1 is FULL, 2..length are deltas each on the one before."""
    return [
        ChainNode(
            sid(number),
            FULL if number == 1 else DELTA,
            T0 + timedelta(hours=number),
            parent_id=None if number == 1 else sid(number - 1),
            hidden=number in hidden,
        )
        for number in range(1, length + 1)
    ]


def test_the_first_snapshot_is_full() -> None:
    plan = plan_next_snapshot(Chain([]), delta_max=16, supports_delta=True)
    assert (plan.kind, plan.parent_id, plan.reason) == (FULL, None, "first snapshot of the volume")


def test_a_plugin_without_deltas_always_takes_fulls() -> None:
    plan = plan_next_snapshot(Chain(linear(1)), delta_max=16, supports_delta=False)
    assert (plan.kind, plan.parent_id) == (FULL, None)
    assert "does not take delta" in plan.reason


def test_deltas_build_on_the_newest_until_delta_max_then_a_full() -> None:
    for length in range(1, 17):  # 1 full + 0..15 deltas
        plan = plan_next_snapshot(Chain(linear(length)), delta_max=16, supports_delta=True)
        assert (plan.kind, plan.parent_id) == (DELTA, sid(length)), length
        assert plan.reason == f"delta {length} of at most 16 since the last full"
    plan = plan_next_snapshot(Chain(linear(17)), delta_max=16, supports_delta=True)
    assert (plan.kind, plan.parent_id) == (FULL, None)
    assert plan.reason == "16 deltas since the last full reach snapshot.delta.max 16"


def test_the_run_of_deltas_restarts_after_a_full() -> None:
    nodes = [*linear(17), ChainNode(sid(18), FULL, T0 + timedelta(hours=18))]
    nodes.append(ChainNode(sid(19), DELTA, T0 + timedelta(hours=19), parent_id=sid(18)))
    plan = plan_next_snapshot(Chain(nodes), delta_max=16, supports_delta=True)
    assert (plan.kind, plan.parent_id) == (DELTA, sid(19))
    assert plan.reason == "delta 2 of at most 16 since the last full"


def test_delta_max_zero_means_fulls_only() -> None:
    plan = plan_next_snapshot(Chain(linear(1)), delta_max=0, supports_delta=True)
    assert plan.kind is FULL


def test_a_negative_delta_max_is_refused_naming_the_setting() -> None:
    with pytest.raises(InvalidArgument) as refused:
        plan_next_snapshot(Chain([]), delta_max=-1, supports_delta=True)
    assert refused.value.field == "snapshot.delta.max"


def test_a_hidden_newest_snapshot_is_still_built_upon() -> None:
    plan = plan_next_snapshot(Chain(linear(3, hidden=frozenset({3}))), delta_max=16, supports_delta=True)
    assert (plan.kind, plan.parent_id) == (DELTA, sid(3))


def test_a_broken_chain_gets_a_full() -> None:
    orphan = ChainNode(sid(5), DELTA, T0, parent_id=sid(4))
    plan = plan_next_snapshot(Chain([orphan]), delta_max=16, supports_delta=True)
    assert plan.kind is FULL
    assert "broken" in plan.reason


def test_a_cycle_is_refused() -> None:
    loop = [ChainNode(sid(1), DELTA, T0, parent_id=sid(2)), ChainNode(sid(2), DELTA, T0, parent_id=sid(1))]
    with pytest.raises(FailedPrecondition, match="cycle"):
        plan_next_snapshot(Chain(loop), delta_max=16, supports_delta=True)


@pytest.mark.parametrize(
    ("node", "says"),
    [
        (ChainNode(sid(1), DELTA, T0), "has no parent"),
        (ChainNode(sid(1), FULL, T0, parent_id=sid(2)), "names a parent"),
    ],
)
def test_inconsistent_nodes_are_refused(node: ChainNode, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says):
        Chain([node])


def test_the_volume_must_be_layered_on_a_snapshot_of_its_chain() -> None:
    with pytest.raises(InvalidArgument, match="not in its chain"):
        Chain(linear(2), volume_parent_id=sid(9))


def test_retention_deletes_the_oldest_beyond_maxsnaps() -> None:
    taken = [(sid(number), T0 + timedelta(days=number)) for number in (3, 1, 5, 2, 4)]
    assert retention_victims(taken, 3) == [sid(1), sid(2)]
    assert retention_victims(taken, 5) == []
    assert retention_victims(taken, 10) == []
    assert retention_victims([], 1) == []


def test_retention_breaks_time_ties_by_id() -> None:
    taken = [(sid(2), T0), (sid(1), T0), (sid(3), T0)]
    assert retention_victims(taken, 1) == [sid(1), sid(2)]


def test_retention_needs_maxsnaps_of_at_least_one() -> None:
    with pytest.raises(InvalidArgument) as refused:
        retention_victims([(sid(1), T0)], 0)
    assert refused.value.field == "max_snaps"


def test_deleting_a_leaf_drops_its_data_at_once() -> None:
    assert plan_delete(Chain(linear(3)), sid(3)) == DeletePlan(hide=(), delete_data=(sid(3),), coalesce=())


def test_deleting_a_middle_snapshot_hides_it_and_merges_it_with_its_only_child() -> None:
    plan = plan_delete(Chain(linear(3)), sid(2))
    assert plan == DeletePlan(hide=(sid(2),), delete_data=(), coalesce=(CoalesceTask(sid(2), sid(3)),))


def test_deleting_the_snapshot_the_volume_is_layered_on_merges_it_into_the_volume() -> None:
    plan = plan_delete(Chain(linear(3), volume_parent_id=sid(3)), sid(3))
    assert plan == DeletePlan(hide=(sid(3),), delete_data=(), coalesce=(CoalesceTask(sid(3), None),))


def test_a_snapshot_with_two_children_is_hidden_and_not_merged() -> None:
    nodes = [*linear(2), ChainNode(sid(3), DELTA, T0 + timedelta(hours=3), parent_id=sid(1))]
    assert plan_delete(Chain(nodes), sid(1)) == DeletePlan(hide=(sid(1),), delete_data=(), coalesce=())


def test_deleting_the_last_dependant_drops_hidden_ancestors_too() -> None:
    chain = Chain(linear(3, hidden=frozenset({1, 2})))
    assert plan_delete(chain, sid(3)) == DeletePlan(hide=(), delete_data=(sid(3), sid(2), sid(1)), coalesce=())


def test_deleting_one_of_two_children_makes_the_hidden_parent_mergeable() -> None:
    nodes = [*linear(2, hidden=frozenset({1})), ChainNode(sid(3), DELTA, T0 + timedelta(hours=3), parent_id=sid(1))]
    plan = plan_delete(Chain(nodes), sid(3))
    assert plan == DeletePlan(hide=(), delete_data=(sid(3),), coalesce=(CoalesceTask(sid(1), sid(2)),))


def test_cascade_stops_at_a_visible_ancestor() -> None:
    chain = Chain(linear(3, hidden=frozenset({2})))
    assert plan_delete(chain, sid(3)) == DeletePlan(hide=(), delete_data=(sid(3), sid(2)), coalesce=())


def test_deleting_an_unknown_or_already_deleted_snapshot_is_refused() -> None:
    with pytest.raises(NotFound):
        plan_delete(Chain(linear(2)), sid(9))
    with pytest.raises(FailedPrecondition, match="already deleted"):
        plan_delete(Chain(linear(2, hidden=frozenset({1}))), sid(1))


def test_coalesce_tasks_are_hidden_single_child_nodes_oldest_first() -> None:
    nodes = linear(5, hidden=frozenset({2, 4}))
    nodes.append(ChainNode(sid(6), DELTA, T0 + timedelta(hours=6), parent_id=sid(1)))
    nodes[0] = ChainNode(sid(1), FULL, T0 + timedelta(hours=1), hidden=True)  # two children: not mergeable
    chain = Chain(nodes)
    assert coalesce_tasks(chain) == [CoalesceTask(sid(2), sid(3)), CoalesceTask(sid(4), sid(5))]
    assert needs_coalescing(chain)


def test_a_chain_without_hidden_snapshots_needs_no_coalescing_even_when_long() -> None:
    chain = Chain(linear(30))
    assert coalesce_tasks(chain) == []
    assert not needs_coalescing(chain)
    assert longest_delta_run(chain) == 29
    assert plan_next_snapshot(chain, delta_max=16, supports_delta=True).kind is FULL


def test_hidden_data_nothing_depends_on_is_orphaned() -> None:
    chain = Chain(linear(2, hidden=frozenset({2})))
    assert orphaned_hidden(chain) == [sid(2)]
    assert needs_coalescing(chain)
    assert orphaned_hidden(Chain(linear(2, hidden=frozenset({2})), volume_parent_id=sid(2))) == []


def test_after_a_revert_the_next_delta_builds_on_the_snapshot_the_volume_sits_on() -> None:
    chain = Chain(linear(17), volume_parent_id=sid(2))  # reverted to snapshot 2: one delta since the full
    plan = plan_next_snapshot(chain, delta_max=16, supports_delta=True)
    assert (plan.kind, plan.parent_id) == (DELTA, sid(2))
    assert plan.reason == "delta 2 of at most 16 since the last full"
    plan = plan_next_snapshot(Chain(linear(3), volume_parent_id=sid(1)), delta_max=16, supports_delta=True)
    assert (plan.kind, plan.parent_id) == (DELTA, sid(1))
