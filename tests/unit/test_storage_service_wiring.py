"""The storage service's wiring: its handler table, where it sends agent commands, and what it shows of a pool."""

from uuid import uuid4

import pytest

from schemas import Command, hosts, storage_queries
from schemas import storage as storage_messages
from schemas.agent import AgentCommand
from schemas.migration import PlanMigration, SwitchVolumePool
from schemas.pool_settings import UpdatePool
from schemas.storage import PoolScope, PoolState, VolumeState
from services.storage.context import agent_route
from services.storage.handlers import COMMAND_HANDLERS, EVENT_HANDLERS
from services.storage.repository import IN_FLIGHT_STATES, PoolRow, VolumeRow

pytestmark = pytest.mark.unit


def pool(scope: PoolScope, **fields: object) -> PoolRow:
    values: dict[str, object] = {
        "pool_id": uuid4(),
        "name": "p1",
        "plugin": "qcow2fs",
        "state": PoolState.UP,
        "scope": scope,
        "zone_id": uuid4(),
        "cluster_id": "c1",
        "host": None,
        "hypervisors": frozenset({"kvm"}),
        "tags": frozenset(),
        "thin_provisioned": True,
    }
    values.update(fields)
    return PoolRow(**values)  # type: ignore[arg-type]  # the test's defaults, typed by PoolRow itself


def test_every_storage_command_that_is_not_an_agent_one_has_a_handler() -> None:
    commands = {
        value
        for module in (storage_messages, storage_queries, hosts)
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Command)
        and value.message_type
        and not issubclass(value, AgentCommand)
    }
    # The storage service's part of a migration (schemas.migration) and the pool update are its too.
    assert commands | {PlanMigration, SwitchVolumePool, UpdatePool} == set(COMMAND_HANDLERS)


def test_every_agent_answer_about_pools_and_volumes_is_handled() -> None:
    handled = {model.message_type for model in EVENT_HANDLERS}
    assert {
        "agent.pool.attached",
        "agent.pool.attach.failed",
        "agent.pool.reconfigured",
        "agent.pool.reconfigure.failed",
        "agent.volume.created",
        "agent.volume.create.failed",
        "agent.volume.deleted",
        "agent.volume.delete.failed",
        "agent.volume.resized",
        "agent.volume.resize.failed",
        "agent.pool.stats.reported",
    } <= handled


def test_host_pools_go_to_their_host_and_the_others_to_their_cluster() -> None:
    assert agent_route(pool(PoolScope.HOST, host="kvm1")) == ("kvm1", None)
    assert agent_route(pool(PoolScope.CLUSTER)) == (None, "c1")
    assert agent_route(pool(PoolScope.ZONE, cluster_id="c9")) == (None, "c9")


def test_the_allocator_sees_what_the_pool_row_knows() -> None:
    row = pool(PoolScope.CLUSTER, capacity_bytes=100, used_bytes=10, allocated_bytes=40)
    view = row.view()
    assert (view.capacity_bytes, view.used_bytes, view.allocated_bytes) == (100, 10, 40)
    assert view.thin_provisioned
    assert row.info().allocated_bytes == 40


def test_maintenance_waits_for_every_operation_that_changes_data() -> None:
    assert VolumeState.READY not in IN_FLIGHT_STATES
    assert {VolumeState.CREATING, VolumeState.RESIZING, VolumeState.REVERT_SNAPSHOTTING} <= IN_FLIGHT_STATES
    volume = VolumeRow(volume_id=uuid4(), name="v", state=VolumeState.READY, size_bytes=1, zone_id=uuid4())
    assert volume.moved(VolumeState.DESTROY).state is VolumeState.DESTROY
    assert volume.info().pool_id is None
