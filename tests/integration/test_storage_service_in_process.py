"""The storage service and an agent embedded in one process on the memory transport, as the demo runs them."""

from pathlib import Path
from uuid import uuid4

import pytest

from schemas.storage import AddPool, CreateVolume, PoolAdded, PoolScope, VolumeCreated, VolumeCreateFailed
from tests.integration.storage_stack import Stack, pool_directory

pytestmark = pytest.mark.integration


async def test_add_a_pool_and_create_a_volume_on_the_memory_transport(
    database_url: str, amqp_url: str, namespace: str, tmp_path: Path
) -> None:
    stack = await Stack.open(database_url, amqp_url, namespace, in_memory=True)
    try:
        await stack.start_agent("demo-host", "demo")
        await stack.start_storage()
        zone = uuid4()
        add = AddPool(
            pool_id=uuid4(),
            name="local",
            plugin="qcow2fs",
            config={"path": str(pool_directory(tmp_path))},
            scope=PoolScope.HOST,
            cluster_id="demo",
            host="demo-host",
            zone_id=zone,
        )
        await stack.outcome(await stack.send(add), PoolAdded)
        create = CreateVolume(volume_id=uuid4(), name="root", size_bytes=1024 * 1024, zone_id=zone, host="demo-host")
        created = await stack.outcome(await stack.send(create), VolumeCreated)
        assert created.pool_id == add.pool_id
        # The host-local pool named, no host given: the volume lives on that pool's host.
        named = CreateVolume(volume_id=uuid4(), name="data", size_bytes=1024 * 1024, zone_id=zone, pool_id=add.pool_id)
        placed = await stack.outcome(await stack.send(named), VolumeCreated)
        assert placed.pool_id == add.pool_id
        # Asked to place it without a pool or a host, the allocator still says why a host-local pool cannot take it.
        unplaced = CreateVolume(volume_id=uuid4(), name="loose", size_bytes=1024 * 1024, zone_id=zone)
        refused = await stack.outcome(await stack.send(unplaced), VolumeCreateFailed)
        assert refused.skipped_pools == {str(add.pool_id): "pool is local to host demo-host and the VM has no host yet"}
    finally:
        await stack.close()
