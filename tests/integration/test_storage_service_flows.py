"""The storage service with a real agent on RabbitMQ and PostgreSQL, qcow2fs under the test's directory."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from schemas import Envelope
from schemas.agent import PoolDetachedFromHost
from schemas.sagas import StepFailed
from schemas.storage import (
    AddPool,
    BeginVolumeOperation,
    CancelPoolMaintenance,
    CreateVolume,
    DeletePool,
    DeleteVolume,
    DisablePool,
    EnablePool,
    EndVolumeOperation,
    MaintainPool,
    PoolAdded,
    PoolAddFailed,
    PoolOperationFailed,
    PoolScope,
    PoolState,
    PoolStatsCollected,
    ResizeVolume,
    VolumeCreated,
    VolumeCreateFailed,
    VolumeDeleted,
    VolumeDeleteFailed,
    VolumeOperation,
    VolumeResized,
    VolumeResizeFailed,
    VolumeState,
    VolumeStateChanged,
)
from schemas.storage_queries import ListPools, ListVolumes, PoolsListed, VolumesListed
from services.runtime.daemon import Service
from services.storage.stats import StatsCollector
from tests.helpers import assert_eventually
from tests.integration.storage_stack import Stack, pool_directory, wait_until

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
ZONE = uuid4()


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Stack]:
    opened = await Stack.open(database_url, amqp_url, namespace)
    await opened.start_agent("kvm1", "c1")
    await opened.start_storage()
    yield opened
    await opened.close()


def is_storage(service: Service) -> bool:
    return any(isinstance(part, StatsCollector) for part in service.parts)


async def add_pool(stack: Stack, root: Path, **extra: Any) -> UUID:
    pool_id = uuid4()
    command = AddPool(
        pool_id=pool_id,
        name=f"pool-{pool_id.hex[:6]}",
        plugin="qcow2fs",
        config={"path": str(root)},
        scope=PoolScope.CLUSTER,
        cluster_id="c1",
        zone_id=ZONE,
        hypervisors=frozenset({"kvm"}),
        **extra,
    )
    added = await stack.outcome(await stack.send(command), PoolAdded)
    assert added.capacity_bytes > 0
    return pool_id


async def pools(stack: Stack, pool_id: UUID) -> PoolsListed:
    reply = await stack.bus.request(Envelope.wrap(ListPools(pool_id=pool_id, include_removed=True)), timeout=10)
    assert isinstance(reply.payload, PoolsListed)
    return reply.payload


async def volume_state(stack: Stack, volume_id: UUID) -> VolumeState:
    reply = await stack.bus.request(Envelope.wrap(ListVolumes(volume_id=volume_id, include_expunged=True)), timeout=10)
    assert isinstance(reply.payload, VolumesListed)
    return reply.payload.volumes[0].state


async def create_volume(stack: Stack, size: int = MIB) -> VolumeCreated:
    command = CreateVolume(volume_id=uuid4(), name="data", size_bytes=size, zone_id=ZONE, hypervisor="kvm")
    return await stack.outcome(await stack.send(command), VolumeCreated)


async def wait_for(stack: Stack, model: type[Any], **fields: Any) -> None:
    def found() -> bool:
        return bool(stack.of_type(model, lambda p: all(getattr(p, k) == v for k, v in fields.items())))

    await assert_eventually(found, timeout=30, what=f"{model.__name__} {fields}")


async def test_pool_and_volume_life_cycle_end_to_end(stack: Stack, tmp_path: Path) -> None:
    root = pool_directory(tmp_path)
    pool_id = await add_pool(stack, root)
    assert (await pools(stack, pool_id)).pools[0].state is PoolState.UP

    created = await create_volume(stack)
    assert created.pool_id == pool_id
    assert await volume_state(stack, created.volume_id) is VolumeState.READY
    listed = (await pools(stack, pool_id)).pools[0]
    assert listed.allocated_bytes == MIB
    assert listed.volumes == 1

    await stack.send(ResizeVolume(volume_id=created.volume_id, new_size_bytes=3 * MIB))
    await wait_for(stack, VolumeResized, volume_id=created.volume_id)
    assert (await pools(stack, pool_id)).pools[0].allocated_bytes == 3 * MIB

    huge = await stack.send(ResizeVolume(volume_id=created.volume_id, new_size_bytes=2**60))
    too_big = await stack.outcome(huge, VolumeResizeFailed)
    assert too_big.error.code == "RESOURCE_EXHAUSTED"
    assert "storage.overprovisioning.factor" in too_big.error.message

    shrink = await stack.send(ResizeVolume(volume_id=created.volume_id, new_size_bytes=MIB))
    refused = await stack.outcome(shrink, VolumeResizeFailed)
    assert refused.error.field == "new_size_bytes"
    assert "shrinking is not supported by plugin qcow2fs" in refused.error.message  # not "ask with allow_shrink"
    consented = await stack.send(ResizeVolume(volume_id=created.volume_id, new_size_bytes=MIB, allow_shrink=True))
    assert "not supported" in (await stack.outcome(consented, VolumeResizeFailed)).error.message

    await stack.send(DeleteVolume(volume_id=created.volume_id))
    await wait_for(stack, VolumeDeleted, volume_id=created.volume_id)
    assert await volume_state(stack, created.volume_id) is VolumeState.EXPUNGED
    states = [p.new_state for p in stack.of_type(VolumeStateChanged, lambda p: p.volume_id == created.volume_id)]
    assert states == [
        VolumeState.CREATING,
        VolumeState.READY,
        VolumeState.RESIZING,
        VolumeState.READY,
        VolumeState.DESTROY,
        VolumeState.EXPUNGING,
        VolumeState.EXPUNGED,
    ]
    assert not any((root / "volumes").iterdir())


async def test_illegal_pool_requests_are_refused_and_change_nothing(stack: Stack, tmp_path: Path) -> None:
    pool_id = await add_pool(stack, pool_directory(tmp_path))
    created = await create_volume(stack)

    await stack.send(DisablePool(pool_id=pool_id))
    await wait_pool_state(stack, pool_id, PoolState.DISABLED)
    refused = await stack.outcome(await stack.send(DeletePool(pool_id=pool_id)), PoolOperationFailed)
    assert "still holds 1 volume" in refused.error.message
    assert (await pools(stack, pool_id)).pools[0].state is PoolState.DISABLED
    assert await volume_state(stack, created.volume_id) is VolumeState.READY

    await stack.send(EnablePool(pool_id=pool_id))
    await wait_pool_state(stack, pool_id, PoolState.UP)
    await stack.send(MaintainPool(pool_id=pool_id))
    await wait_pool_state(stack, pool_id, PoolState.MAINTENANCE)
    enable = await stack.outcome(await stack.send(EnablePool(pool_id=pool_id)), PoolOperationFailed)
    assert enable.error.code == "FAILED_PRECONDITION"
    assert "Maintenance" in enable.error.message
    assert (await pools(stack, pool_id)).pools[0].state is PoolState.MAINTENANCE

    # A pool in maintenance takes no new volume.
    command = CreateVolume(volume_id=uuid4(), name="more", size_bytes=MIB, zone_id=ZONE, pool_id=pool_id)
    failed = await stack.outcome(await stack.send(command), VolumeCreateFailed)
    assert failed.error.code == "RESOURCE_EXHAUSTED"
    assert str(pool_id) in failed.skipped_pools


async def wait_pool_state(stack: Stack, pool_id: UUID, state: PoolState) -> None:
    async def reached() -> bool:
        return (await pools(stack, pool_id)).pools[0].state is state

    await wait_until(reached, what=f"pool {pool_id} {state}")


async def test_a_pool_config_missing_a_field_is_refused_naming_it_and_never_echoing_the_secret(
    stack: Stack, tmp_path: Path
) -> None:
    secret = "s3cr3t-" + uuid4().hex
    pool_id = uuid4()
    command = AddPool(
        pool_id=pool_id,
        name="broken",
        plugin="qcow2fs",
        config={"qemu_img": secret},
        scope=PoolScope.CLUSTER,
        cluster_id="c1",
        zone_id=ZONE,
    )
    failed = await stack.outcome(await stack.send(command), PoolAddFailed)
    assert failed.error.field == "path"
    assert "path" in failed.error.message
    assert secret not in failed.model_dump_json()
    assert (await pools(stack, pool_id)).pools == ()
    async with stack.pool.acquire() as connection:
        rows = await connection.fetch("SELECT type, payload::text AS payload FROM bus.journal WHERE type <> 'pool.add'")
        assert await connection.fetchval("SELECT count(*) FROM bus.outbox WHERE type = 'agent.pool.attach'") == 0
    assert all(secret not in row["payload"] for row in rows)


async def test_saga_operations_hold_and_release_a_volume(stack: Stack, tmp_path: Path) -> None:
    await add_pool(stack, pool_directory(tmp_path))
    created = await create_volume(stack)
    saga_id = uuid4()
    begin = BeginVolumeOperation(volume_id=created.volume_id, operation=VolumeOperation.REVERT_SNAPSHOT)
    held = await stack.reply(await stack.send(begin, saga_id=saga_id, step=1, fencing_token=4))
    assert isinstance(held.payload, VolumeStateChanged)
    assert held.saga_id == saga_id
    assert await volume_state(stack, created.volume_id) is VolumeState.REVERT_SNAPSHOTTING
    # A volume held for one operation cannot be deleted or resized meanwhile.
    refused = await stack.outcome(await stack.send(DeleteVolume(volume_id=created.volume_id)), VolumeDeleteFailed)
    assert refused.error.code == "FAILED_PRECONDITION"

    end = EndVolumeOperation(volume_id=created.volume_id, operation=VolumeOperation.REVERT_SNAPSHOT, succeeded=True)
    stale = await stack.reply(await stack.send(end, saga_id=uuid4(), step=1, fencing_token=3))
    assert isinstance(stale.payload, StepFailed)
    assert stale.payload.error.code == "ABORTED"
    assert await volume_state(stack, created.volume_id) is VolumeState.REVERT_SNAPSHOTTING
    for step in (2, 3):  # ending twice is fine
        released = await stack.reply(await stack.send(end, saga_id=saga_id, step=step, fencing_token=4))
        assert isinstance(released.payload, VolumeStateChanged)
    assert await volume_state(stack, created.volume_id) is VolumeState.READY


async def test_statistics_are_collected_from_the_agents(stack: Stack, tmp_path: Path) -> None:
    pool_id = await add_pool(stack, pool_directory(tmp_path))
    stats = next(part for service in stack.services for part in service.parts if isinstance(part, StatsCollector))
    assert await stats.collect_once() == 1
    await wait_for(stack, PoolStatsCollected, pool_id=pool_id)


async def test_maintenance_waits_for_in_flight_volume_operations_then_a_pool_without_volumes_is_deleted(
    stack: Stack, tmp_path: Path
) -> None:
    root = pool_directory(tmp_path)
    pool_id = await add_pool(stack, root)
    agent = next(service for service in stack.services if not is_storage(service))
    await agent.stop()  # the agent's queues stay: commands wait in them
    create = CreateVolume(volume_id=uuid4(), name="slow", size_bytes=MIB, zone_id=ZONE)
    await stack.send(create)
    await wait_for(stack, VolumeStateChanged, volume_id=create.volume_id, new_state=VolumeState.CREATING)

    await stack.send(MaintainPool(pool_id=pool_id))
    await wait_pool_state(stack, pool_id, PoolState.PREPARE_FOR_MAINTENANCE)
    await stack.start_agent("kvm1", "c1")
    await wait_pool_state(stack, pool_id, PoolState.MAINTENANCE)
    assert await volume_state(stack, create.volume_id) is VolumeState.READY

    refused = await stack.outcome(await stack.send(DeletePool(pool_id=pool_id)), PoolOperationFailed)
    assert refused.error.code == "FAILED_PRECONDITION"
    deleted = await stack.send(DeleteVolume(volume_id=create.volume_id))
    refused_delete = await stack.outcome(deleted, VolumeDeleteFailed)
    assert "Maintenance" in refused_delete.error.message
    assert await volume_state(stack, create.volume_id) is VolumeState.READY

    await stack.send(CancelPoolMaintenance(pool_id=pool_id))
    await wait_pool_state(stack, pool_id, PoolState.UP)
    await stack.send(DeleteVolume(volume_id=create.volume_id))
    await wait_for(stack, VolumeDeleted, volume_id=create.volume_id)
    await stack.send(DisablePool(pool_id=pool_id))
    await wait_pool_state(stack, pool_id, PoolState.DISABLED)
    await stack.send(DeletePool(pool_id=pool_id))
    await wait_pool_state(stack, pool_id, PoolState.REMOVED)
    await wait_for(stack, PoolDetachedFromHost, pool_id=pool_id)
    # The released directory can serve a new pool.
    await add_pool(stack, root)


async def test_repeated_requests_get_the_same_answer(stack: Stack, tmp_path: Path) -> None:
    root = pool_directory(tmp_path)
    pool_id = await add_pool(stack, root)
    again = AddPool(
        pool_id=pool_id,
        name="any",
        plugin="qcow2fs",
        config={"path": str(root)},
        scope=PoolScope.CLUSTER,
        cluster_id="c1",
        zone_id=ZONE,
    )
    assert (await stack.outcome(await stack.send(again), PoolAdded)).pool_id == pool_id

    created = await create_volume(stack)
    repeat = CreateVolume(volume_id=created.volume_id, name="data", size_bytes=MIB, zone_id=ZONE)
    assert (await stack.outcome(await stack.send(repeat), VolumeCreated)).pool_id == pool_id
    listed = (await pools(stack, pool_id)).pools[0]
    assert listed.volumes == 1


async def test_a_saga_step_gets_its_answer_once_the_agent_has_done_the_work(stack: Stack, tmp_path: Path) -> None:
    pool_id = await add_pool(stack, pool_directory(tmp_path))
    saga_id = uuid4()
    create = CreateVolume(volume_id=uuid4(), name="staged", size_bytes=MIB, zone_id=ZONE)
    created = await stack.reply(await stack.send(create, saga_id=saga_id, step=3))
    assert isinstance(created.payload, VolumeCreated)
    assert created.payload.pool_id == pool_id

    too_big = ResizeVolume(volume_id=create.volume_id, new_size_bytes=2**60)
    refused = await stack.reply(await stack.send(too_big, saga_id=saga_id, step=4))
    assert isinstance(refused.payload, StepFailed)
    assert refused.payload.error.code == "RESOURCE_EXHAUSTED"

    deleted = await stack.reply(await stack.send(DeleteVolume(volume_id=create.volume_id), saga_id=saga_id, step=5))
    assert isinstance(deleted.payload, VolumeDeleted)
    assert await volume_state(stack, create.volume_id) is VolumeState.EXPUNGED
