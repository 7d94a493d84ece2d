"""The storage service's migration plan: which destinations it refuses up front, and why; which method it picks."""

from dataclasses import replace
from uuid import uuid4

import pytest

from plugins.registry import load_plugins
from schemas.errors import FailedPrecondition
from schemas.migration import MigrationMethod
from schemas.storage import PoolScope, PoolState, VolumeState
from services.storage.context import Storage
from services.storage.migration import _check_destination, _direct_route, _method
from services.storage.repository import PoolRow, VolumeRow

pytestmark = pytest.mark.unit
GIB = 1 << 30
ZONE = uuid4()


def pool(name: str, **fields: object) -> PoolRow:
    values: dict[str, object] = {
        "pool_id": uuid4(),
        "name": name,
        "plugin": "qcow2fs",
        "state": PoolState.UP,
        "scope": PoolScope.CLUSTER,
        "zone_id": ZONE,
        "cluster_id": "c1",
        "host": None,
        "hypervisors": frozenset({"kvm"}),
        "tags": frozenset(),
        "thin_provisioned": False,
        "capacity_bytes": 100 * GIB,
        "used_bytes": 10 * GIB,
        "allocated_bytes": 10 * GIB,
    }
    values.update(fields)
    return PoolRow(**values)  # type: ignore[arg-type]  # the test's defaults, typed by PoolRow itself


SOURCE = pool("source")
VOLUME = VolumeRow(
    volume_id=uuid4(), name="v", state=VolumeState.READY, size_bytes=8 * GIB, zone_id=ZONE, pool_id=SOURCE.pool_id
)
STORAGE = Storage(plugins=load_plugins())


def test_an_up_pool_with_room_in_reach_takes_the_volume() -> None:
    _check_destination(VOLUME, SOURCE, pool("target"), STORAGE)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (pool("target", state=PoolState.MAINTENANCE), "is Maintenance: only an Up pool takes a volume"),
        (pool("target", state=PoolState.DISABLED), "is Disabled"),
        (pool("target", used_bytes=90 * GIB), "pool.storage.capacity.disablethreshold"),
        (pool("target", allocated_bytes=80 * GIB), "pool.storage.allocated.capacity.disablethreshold"),
        (pool("target", hypervisors=frozenset({"xenserver"})), "not the hypervisor of the volume's pool"),
        (pool("target", zone_id=uuid4()), "zone"),
    ],
)
def test_a_destination_that_may_not_take_the_volume_is_refused_saying_why(target: PoolRow, reason: str) -> None:
    with pytest.raises(FailedPrecondition) as refused:
        _check_destination(VOLUME, SOURCE, target, STORAGE)
    assert reason in refused.value.message


def test_a_vms_volume_stays_within_reach_of_the_vms_host() -> None:
    on_vm = replace(VOLUME, vm_id=uuid4())
    local_elsewhere = pool("target", scope=PoolScope.HOST, host="h2", cluster_id="c1")
    with pytest.raises(FailedPrecondition, match="reachable from the VM's host"):
        _check_destination(on_vm, SOURCE, local_elsewhere, STORAGE)
    _check_destination(replace(VOLUME, vm_id=None), SOURCE, local_elsewhere, STORAGE)  # a detached volume may


def test_pools_whose_plugin_cannot_migrate_natively_are_staged_saying_why() -> None:
    method, why = _method(SOURCE, pool("target"), STORAGE)
    assert method is MigrationMethod.STAGED
    assert why == "qcow2fs cannot migrate natively"


@pytest.mark.parametrize(
    ("source", "target", "route"),
    [
        (pool("a", scope=PoolScope.HOST, host="h1"), pool("b", scope=PoolScope.HOST, host="h1"), ("h1", None)),
        (pool("a", scope=PoolScope.HOST, host="h1"), pool("b", scope=PoolScope.HOST, host="h2"), None),
        (pool("a", scope=PoolScope.HOST, host="h1"), pool("b"), ("h1", None)),  # h1 is of c1, which reaches b
        (pool("a"), pool("b", scope=PoolScope.HOST, host="h2"), ("h2", None)),
        (pool("a", scope=PoolScope.HOST, host="h1"), pool("b", cluster_id="c2"), None),
        (pool("a"), pool("b"), (None, "c1")),
        (pool("a"), pool("b", scope=PoolScope.ZONE, cluster_id="c1"), (None, "c1")),
        (pool("a"), pool("b", cluster_id="c2"), None),
    ],
)
def test_one_agent_that_reaches_both_pools_copies_directly(
    source: PoolRow, target: PoolRow, route: tuple[str | None, str | None] | None
) -> None:
    assert _direct_route(source, target) == route
