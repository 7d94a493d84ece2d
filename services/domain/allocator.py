"""The storage pool allocator: which pools may take a new volume, best first, and why the others may not.

It follows CloudStack's StoragePoolAllocator: a pool must be Up, in the zone, reachable from where the VM runs
(its scope), serve the VM's hypervisor, carry every tag asked for, and stay under both capacity thresholds:
- `pool.storage.capacity.disablethreshold`: used bytes / capacity;
- `pool.storage.allocated.capacity.disablethreshold`: (allocated + asked) / (capacity x over-provisioning),
  where `storage.overprovisioning.factor` applies only to pools whose storage is thin-provisioned.
Candidates are ordered least allocated first (then least used, then by id), which spreads volumes evenly and
makes the choice reproducible.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from schemas.errors import InvalidArgument, ResourceExhausted
from schemas.storage import PoolScope, PoolState
from services.domain.pools import accepts_allocations

CAPACITY_SETTING = "pool.storage.capacity.disablethreshold"
ALLOCATED_SETTING = "pool.storage.allocated.capacity.disablethreshold"
OVERPROVISIONING_SETTING = "storage.overprovisioning.factor"


@dataclass(frozen=True, slots=True)
class CapacityThresholds:
    """The three capacity settings, with CloudStack's defaults."""

    capacity_disable_threshold: float = 0.85
    allocated_capacity_disable_threshold: float = 0.85
    overprovisioning_factor: float = 2.0

    def __post_init__(self) -> None:
        for name, value in (
            (CAPACITY_SETTING, self.capacity_disable_threshold),
            (ALLOCATED_SETTING, self.allocated_capacity_disable_threshold),
        ):
            if not 0 < value <= 1:
                raise InvalidArgument(f"{name} must be above 0 and at most 1, not {value}", field=name)
        if self.overprovisioning_factor < 1:
            raise InvalidArgument(
                f"{OVERPROVISIONING_SETTING} must be at least 1, not {self.overprovisioning_factor}",
                field=OVERPROVISIONING_SETTING,
            )


@dataclass(frozen=True, slots=True)
class PoolView:
    """What the allocator needs to know of a pool.

    Attributes:
        allocated_bytes: Sum of the virtual sizes of the volumes on the pool.
        thin_provisioned: Whether the storage allocates on write, so the over-provisioning factor applies.
        hypervisors: Hypervisors the pool serves; empty means any.
    """

    pool_id: UUID
    name: str
    state: PoolState
    scope: PoolScope
    zone_id: UUID
    capacity_bytes: int
    used_bytes: int
    allocated_bytes: int
    thin_provisioned: bool = False
    cluster_id: str | None = None
    host: str | None = None
    hypervisors: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    thresholds: CapacityThresholds | None = None
    """The pool's own thresholds, which win over the deployment's."""


@dataclass(frozen=True, slots=True)
class AllocationRequest:
    """A volume looking for a pool.

    Attributes:
        cluster_id: The cluster of the VM; None when it is not placed yet (cluster-scoped pools then all fit).
        host: The host of the VM; None when it is not placed yet (host-scoped pools then never fit).
        avoid: Pools that must not be chosen (the source of a migration, pools that already failed).
    """

    size_bytes: int
    zone_id: UUID
    cluster_id: str | None = None
    host: str | None = None
    hypervisor: str | None = None
    tags: frozenset[str] = frozenset()
    avoid: frozenset[UUID] = frozenset()

    def __post_init__(self) -> None:
        if self.size_bytes <= 0:
            raise InvalidArgument(f"a volume needs a positive size, not {self.size_bytes} bytes", field="size_bytes")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A pool that may take the volume, and how full it would be.

    Attributes:
        allocated_ratio_after: (allocated + asked) / (capacity x over-provisioning factor).
        used_ratio: used / capacity.
    """

    pool: PoolView
    allocated_ratio_after: float
    used_ratio: float


@dataclass(frozen=True, slots=True)
class SkippedPool:
    """A pool that may not take the volume, and why, for the operator."""

    pool_id: UUID
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Allocation:
    """The allocator's answer: candidates best first, and every other pool with its reason."""

    candidates: tuple[Candidate, ...]
    skipped: tuple[SkippedPool, ...]

    def best(self) -> Candidate:
        """The first candidate, or ResourceExhausted saying why each pool was skipped."""
        if self.candidates:
            return self.candidates[0]
        if not self.skipped:
            raise ResourceExhausted("no storage pool exists in the zone: add one with `strata pool add`")
        reasons = "; ".join(f"{pool.name} ({pool.pool_id}): {pool.reason}" for pool in self.skipped)
        raise ResourceExhausted(f"no storage pool can take the volume: {reasons}")

    def skipped_reasons(self) -> dict[str, str]:
        """Pool id -> reason, as `volume.create.failed` carries it."""
        return {str(pool.pool_id): pool.reason for pool in self.skipped}


def allocate(
    request: AllocationRequest, pools: Iterable[PoolView], thresholds: CapacityThresholds | None = None
) -> Allocation:
    """Return the pools that may take the volume, best first, and the reason every other one was skipped."""
    limits = thresholds or CapacityThresholds()
    candidates: list[Candidate] = []
    skipped: list[SkippedPool] = []
    for pool in pools:
        own = pool.thresholds or limits
        reason = _placement_reason(request, pool) or _capacity_reason(request, pool, own)
        if reason:
            skipped.append(SkippedPool(pool.pool_id, pool.name, reason))
        else:
            candidates.append(
                Candidate(pool, _allocated_ratio_after(request, pool, own), pool.used_bytes / pool.capacity_bytes)
            )
    candidates.sort(key=lambda item: (item.allocated_ratio_after, item.used_ratio, str(item.pool.pool_id)))
    return Allocation(tuple(candidates), tuple(skipped))


def _placement_reason(request: AllocationRequest, pool: PoolView) -> str | None:
    """Why the pool is not a place for this volume at all (state, zone, scope, hypervisor, tags), or None."""
    for check in (_excluded, _state_reason, _zone_reason, _scope_reason, _hypervisor_reason, _tags_reason):
        reason = check(request, pool)
        if reason:
            return reason
    return None


def _excluded(request: AllocationRequest, pool: PoolView) -> str | None:
    return "excluded by the request" if pool.pool_id in request.avoid else None


def _state_reason(_request: AllocationRequest, pool: PoolView) -> str | None:
    if accepts_allocations(pool.state):
        return None
    return f"pool is {pool.state}: only an Up pool takes new volumes"


def _zone_reason(request: AllocationRequest, pool: PoolView) -> str | None:
    if pool.zone_id == request.zone_id:
        return None
    return f"pool is in zone {pool.zone_id}, the volume in zone {request.zone_id}"


def _hypervisor_reason(request: AllocationRequest, pool: PoolView) -> str | None:
    if request.hypervisor and pool.hypervisors and request.hypervisor not in pool.hypervisors:
        return f"pool serves {', '.join(sorted(pool.hypervisors))}, not {request.hypervisor}"
    return None


def _tags_reason(request: AllocationRequest, pool: PoolView) -> str | None:
    missing = request.tags - pool.tags
    return f"pool lacks the tag(s) {', '.join(sorted(missing))}" if missing else None


def _scope_reason(request: AllocationRequest, pool: PoolView) -> str | None:
    if pool.scope is PoolScope.HOST:
        if request.host is None:
            return f"pool is local to host {pool.host} and the VM has no host yet"
        if pool.host != request.host:
            return f"pool is local to host {pool.host}, the VM is on host {request.host}"
    elif pool.scope is PoolScope.CLUSTER and request.cluster_id is not None and pool.cluster_id != request.cluster_id:
        return f"pool serves cluster {pool.cluster_id}, the VM is in cluster {request.cluster_id}"
    return None


def _capacity_reason(request: AllocationRequest, pool: PoolView, limits: CapacityThresholds) -> str | None:
    """Why the pool is too full for this volume, or None."""
    if pool.capacity_bytes <= 0:
        return "pool reports no capacity (statistics not collected yet?)"
    used = pool.used_bytes / pool.capacity_bytes
    if used > limits.capacity_disable_threshold:
        return f"pool is {used:.1%} used, over {CAPACITY_SETTING} {limits.capacity_disable_threshold}"
    allocated_after = _allocated_ratio_after(request, pool, limits)
    if allocated_after > limits.allocated_capacity_disable_threshold:
        factor = _factor(pool, limits)
        over = f" x {OVERPROVISIONING_SETTING} {factor:g}" if factor != 1 else ""
        return (
            f"pool would be {allocated_after:.1%} allocated (capacity{over}) with this volume, "
            f"over {ALLOCATED_SETTING} {limits.allocated_capacity_disable_threshold}"
        )
    return None


def _factor(pool: PoolView, limits: CapacityThresholds) -> float:
    return limits.overprovisioning_factor if pool.thin_provisioned else 1.0


def _allocated_ratio_after(request: AllocationRequest, pool: PoolView, limits: CapacityThresholds) -> float:
    return (pool.allocated_bytes + request.size_bytes) / (pool.capacity_bytes * _factor(pool, limits))
