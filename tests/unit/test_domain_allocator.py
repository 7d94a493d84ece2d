"""The allocator: scope, hypervisor, tags, both capacity thresholds and the over-provisioning factor."""

from dataclasses import replace
from uuid import UUID, uuid4

import pytest

from schemas.errors import InvalidArgument, ResourceExhausted
from schemas.storage import PoolScope, PoolState
from services.domain.allocator import AllocationRequest, CapacityThresholds, PoolView, allocate

pytestmark = pytest.mark.unit

GIB = 1024**3
ZONE = uuid4()


def pool(name: str, **overrides: object) -> PoolView:
    base = PoolView(
        pool_id=uuid4(),
        name=name,
        state=PoolState.UP,
        scope=PoolScope.ZONE,
        zone_id=ZONE,
        capacity_bytes=100 * GIB,
        used_bytes=10 * GIB,
        allocated_bytes=10 * GIB,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def request(**overrides: object) -> AllocationRequest:
    return replace(AllocationRequest(size_bytes=GIB, zone_id=ZONE), **overrides)  # type: ignore[arg-type]


def reasons(
    pools: list[PoolView], asked: AllocationRequest, thresholds: CapacityThresholds | None = None
) -> dict[str, str]:
    allocation = allocate(asked, pools, thresholds)
    return {item.name: item.reason for item in allocation.skipped}


def test_defaults_are_cloudstacks() -> None:
    defaults = CapacityThresholds()
    assert (defaults.capacity_disable_threshold, defaults.allocated_capacity_disable_threshold) == (0.85, 0.85)
    assert defaults.overprovisioning_factor == 2


def test_candidates_are_ordered_least_allocated_first_then_least_used() -> None:
    busy = pool("busy", allocated_bytes=60 * GIB)
    idle = pool("idle", allocated_bytes=0)
    idle_but_used = pool("idle-used", allocated_bytes=0, used_bytes=50 * GIB)
    allocation = allocate(request(), [busy, idle_but_used, idle])
    assert [candidate.pool.name for candidate in allocation.candidates] == ["idle", "idle-used", "busy"]
    assert allocation.best().pool is idle
    assert allocation.candidates[0].allocated_ratio_after == pytest.approx(1 / 100)


def test_ties_are_broken_by_id_so_the_choice_is_reproducible() -> None:
    first = pool("a", pool_id=UUID(int=1))
    second = pool("b", pool_id=UUID(int=2))
    assert allocate(request(), [second, first]).best().pool is first


@pytest.mark.parametrize("state", [state for state in PoolState if state is not PoolState.UP])
def test_only_up_pools_are_candidates(state: PoolState) -> None:
    assert reasons([pool("p", state=state)], request()) == {"p": f"pool is {state}: only an Up pool takes new volumes"}


def test_another_zone_is_skipped() -> None:
    other = uuid4()
    assert reasons([pool("far", zone_id=other)], request()) == {
        "far": f"pool is in zone {other}, the volume in zone {ZONE}"
    }


def test_avoided_pools_are_skipped() -> None:
    source = pool("source")
    assert reasons([source], request(avoid=frozenset({source.pool_id}))) == {"source": "excluded by the request"}


def test_host_scope_matches_only_the_vms_host() -> None:
    local = pool("local", scope=PoolScope.HOST, host="h1", cluster_id="c1")
    assert allocate(request(host="h1", cluster_id="c1"), [local]).best().pool is local
    assert reasons([local], request(host="h2")) == {"local": "pool is local to host h1, the VM is on host h2"}
    assert reasons([local], request()) == {"local": "pool is local to host h1 and the VM has no host yet"}


def test_cluster_scope_matches_the_vms_cluster_or_any_when_unplaced() -> None:
    shared = pool("shared", scope=PoolScope.CLUSTER, cluster_id="c1")
    assert allocate(request(cluster_id="c1"), [shared]).best().pool is shared
    assert allocate(request(), [shared]).best().pool is shared
    assert reasons([shared], request(cluster_id="c2")) == {"shared": "pool serves cluster c1, the VM is in cluster c2"}


@pytest.mark.parametrize("scope", [PoolScope.ZONE, PoolScope.REGION])
def test_zone_and_region_scopes_fit_any_host_of_the_zone(scope: PoolScope) -> None:
    wide = pool("wide", scope=scope)
    assert allocate(request(host="h9", cluster_id="c9"), [wide]).best().pool is wide


def test_hypervisor_must_be_served_and_an_empty_list_serves_any() -> None:
    kvm = pool("kvm", hypervisors=frozenset({"kvm"}))
    anything = pool("any")
    allocation = allocate(request(hypervisor="vmware"), [kvm, anything])
    assert [candidate.pool.name for candidate in allocation.candidates] == ["any"]
    assert allocation.skipped_reasons() == {str(kvm.pool_id): "pool serves kvm, not vmware"}
    assert allocate(request(), [kvm]).best().pool is kvm


def test_every_requested_tag_must_be_on_the_pool() -> None:
    fast = pool("fast", tags=frozenset({"ssd", "fast"}))
    plain = pool("plain", tags=frozenset({"ssd"}))
    allocation = allocate(request(tags=frozenset({"ssd", "fast"})), [fast, plain])
    assert [candidate.pool.name for candidate in allocation.candidates] == ["fast"]
    assert reasons([plain], request(tags=frozenset({"ssd", "fast", "nvme"}))) == {
        "plain": "pool lacks the tag(s) fast, nvme"
    }


def test_used_capacity_over_the_threshold_is_skipped_at_the_boundary_it_is_not() -> None:
    at_threshold = pool("edge", used_bytes=85 * GIB)
    over = pool("over", used_bytes=86 * GIB)
    allocation = allocate(request(), [at_threshold, over])
    assert [candidate.pool.name for candidate in allocation.candidates] == ["edge"]
    assert reasons([over], request()) == {
        "over": "pool is 86.0% used, over pool.storage.capacity.disablethreshold 0.85"
    }


def test_allocated_threshold_counts_the_asked_size_without_overprovisioning_for_thick_pools() -> None:
    thick = pool("thick", allocated_bytes=80 * GIB)
    assert allocate(request(size_bytes=5 * GIB), [thick]).best().pool is thick
    assert reasons([thick], request(size_bytes=6 * GIB)) == {
        "thick": "pool would be 86.0% allocated (capacity) with this volume, "
        "over pool.storage.allocated.capacity.disablethreshold 0.85"
    }


def test_overprovisioning_factor_applies_only_to_thin_pools() -> None:
    thin = pool("thin", thin_provisioned=True, allocated_bytes=150 * GIB)
    thick = pool("thick", allocated_bytes=150 * GIB)
    allocation = allocate(request(size_bytes=20 * GIB), [thin, thick])
    assert [candidate.pool.name for candidate in allocation.candidates] == ["thin"]
    assert allocation.candidates[0].allocated_ratio_after == pytest.approx(170 / 200)
    assert reasons([thin], request(size_bytes=21 * GIB)) == {
        "thin": "pool would be 85.5% allocated (capacity x storage.overprovisioning.factor 2) with this volume, "
        "over pool.storage.allocated.capacity.disablethreshold 0.85"
    }
    assert allocate(request(size_bytes=21 * GIB), [thin], CapacityThresholds(overprovisioning_factor=3)).candidates


def test_thresholds_are_settings() -> None:
    half_used = pool("half", used_bytes=50 * GIB)
    strict = CapacityThresholds(capacity_disable_threshold=0.4)
    assert reasons([half_used], request(), strict) == {
        "half": "pool is 50.0% used, over pool.storage.capacity.disablethreshold 0.4"
    }


def test_a_pool_without_capacity_figures_is_skipped() -> None:
    assert reasons([pool("new", capacity_bytes=0)], request()) == {
        "new": "pool reports no capacity (statistics not collected yet?)"
    }


def test_the_first_failing_check_is_the_reason_given() -> None:
    everything_wrong = pool("bad", state=PoolState.DISABLED, zone_id=uuid4(), used_bytes=99 * GIB)
    assert reasons([everything_wrong], request())["bad"].startswith("pool is Disabled")


def test_no_candidate_raises_resource_exhausted_listing_every_reason() -> None:
    full = pool("full", used_bytes=99 * GIB)
    off = pool("off", state=PoolState.MAINTENANCE)
    with pytest.raises(ResourceExhausted) as refused:
        allocate(request(), [full, off]).best()
    message = str(refused.value)
    assert f"full ({full.pool_id}): pool is 99.0% used" in message
    assert f"off ({off.pool_id}): pool is Maintenance" in message


def test_no_pool_at_all_says_to_add_one() -> None:
    with pytest.raises(ResourceExhausted, match="strata pool add"):
        allocate(request(), []).best()


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"capacity_disable_threshold": 0}, "pool.storage.capacity.disablethreshold"),
        ({"capacity_disable_threshold": 1.2}, "pool.storage.capacity.disablethreshold"),
        ({"allocated_capacity_disable_threshold": -1}, "pool.storage.allocated.capacity.disablethreshold"),
        ({"overprovisioning_factor": 0.5}, "storage.overprovisioning.factor"),
    ],
)
def test_bad_thresholds_are_refused_naming_the_setting(settings: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        CapacityThresholds(**settings)
    assert refused.value.field == field
    assert field in str(refused.value)


def test_a_volume_needs_a_positive_size() -> None:
    with pytest.raises(InvalidArgument) as refused:
        AllocationRequest(size_bytes=0, zone_id=ZONE)
    assert refused.value.field == "size_bytes"
