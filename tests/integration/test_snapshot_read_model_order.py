"""The snapshot service's copy of volume state ends equal to the storage service's whatever the order its events
arrive in, and a snapshot service that starts late catches up by asking (real storage service, agent and qcow2fs)."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from schemas import Envelope
from schemas.storage import AddPool, CreateVolume, PoolAdded, PoolScope, ResizeVolume, VolumeCreated, VolumeResized
from services.runtime.handlers import bind_context
from services.snapshot.bootstrap import build_snapshot, migrate_snapshot
from services.snapshot.deps import SnapshotDeps
from services.snapshot.handlers import EVENT_HANDLERS
from tests.helpers import assert_eventually
from tests.integration.storage_stack import Stack, pool_directory

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
ZONE = uuid4()
COLUMNS = "state, size_bytes, pool_id, vm_id"


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Stack]:
    opened = await Stack.open(database_url, amqp_url, namespace)
    async with opened.pool.acquire() as connection:
        await migrate_snapshot(connection)
    await opened.start_agent("kvm1", "c1")
    await opened.start_storage()
    yield opened
    await opened.close()


async def pool_and_resized_volume(stack: Stack, root: Path) -> UUID:
    """A pool, and a volume on it created then resized: the owner's volume is Ready at its new size."""
    pool_id = uuid4()
    add = AddPool(
        pool_id=pool_id,
        name=f"pool-{pool_id.hex[:6]}",
        plugin="qcow2fs",
        config={"path": str(root)},
        scope=PoolScope.CLUSTER,
        cluster_id="c1",
        zone_id=ZONE,
    )
    await stack.outcome(await stack.send(add), PoolAdded)
    volume_id = uuid4()
    create = CreateVolume(volume_id=volume_id, name="v1", size_bytes=MIB, zone_id=ZONE, vm_id=uuid4())
    await stack.outcome(await stack.send(create), VolumeCreated)
    await stack.outcome(await stack.send(ResizeVolume(volume_id=volume_id, new_size_bytes=3 * MIB)), VolumeResized)
    return volume_id


async def owner_and_copy(stack: Stack, volume_id: UUID) -> tuple[Any, Any]:
    async with stack.pool.acquire() as connection:
        owner = await connection.fetchrow(f"SELECT {COLUMNS} FROM storage.volumes WHERE volume_id = $1", volume_id)
        copy = await connection.fetchrow(f"SELECT {COLUMNS} FROM snapshot.volumes WHERE volume_id = $1", volume_id)
    return owner, copy


async def test_volume_events_delivered_in_reverse_order_leave_the_copy_equal_to_the_owner(
    stack: Stack, tmp_path: Path
) -> None:
    volume_id = await pool_and_resized_volume(stack, pool_directory(tmp_path))
    handlers = bind_context(EVENT_HANDLERS, SnapshotDeps())
    about_it = [
        event
        for event in stack.events
        if type(event.payload) in EVENT_HANDLERS and getattr(event.payload, "volume_id", None) == volume_id
    ]
    assert len(about_it) >= 6, [event.type for event in about_it]  # states, created, resized
    for event in reversed(about_it):
        await deliver(stack, handlers, event)
    owner, copy = await owner_and_copy(stack, volume_id)
    assert owner["state"] == "Ready"
    assert owner["size_bytes"] == 3 * MIB
    assert dict(copy) == dict(owner)
    for event in about_it:  # and delivered again, in order: nothing changes
        await deliver(stack, handlers, event, again=True)
    assert (await owner_and_copy(stack, volume_id))[1] == copy


async def deliver(stack: Stack, handlers: dict[Any, Any], event: Envelope, *, again: bool = False) -> None:
    """Hand `event` to the snapshot service's handler in its own unit of work, as its consumer would."""
    handler = handlers[type(event.payload)]
    consumer = "snapshot" if not again else f"snapshot.again.{uuid4().hex[:6]}"
    async with stack.units.begin(consumer, event, lazy=True) as uow:
        assert uow is not None
        await handler(event.payload, event, uow)


async def test_a_snapshot_service_started_late_catches_up_by_asking_the_owner(stack: Stack, tmp_path: Path) -> None:
    volume_id = await pool_and_resized_volume(stack, pool_directory(tmp_path))
    # The snapshot service did not exist when the volume's events were published: it heard none of them.
    service = build_snapshot(stack.transport, stack.units, deps=SnapshotDeps())
    await service.start()
    try:

        async def caught_up() -> bool:
            owner, copy = await owner_and_copy(stack, volume_id)
            return copy is not None and dict(copy) == dict(owner)

        await assert_eventually(caught_up, timeout=30, what="the late snapshot service's copy equal to the owner")
        async with stack.pool.acquire() as connection:
            pools = await connection.fetchval("SELECT count(*) FROM snapshot.pools")
        assert pools == 1
    finally:
        await service.stop()
