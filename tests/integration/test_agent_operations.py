"""The agent on RabbitMQ and PostgreSQL with a real qcow2fs pool and libvirt's test driver."""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Unpack
from uuid import UUID, uuid4

import pytest

from plugins.sdk import faults
from schemas.agent import (
    AgentRoute,
    AttachPoolToHost,
    CollectPoolStats,
    CreateVolumeOnPool,
    DeleteVolumeOnPool,
    PoolAttachedToHost,
    PoolAttachToHostFailed,
    PoolStatsReported,
    ResizeVolumeOnPool,
    VolumeCreatedOnPool,
    VolumeDeletedOnPool,
    VolumeResizedOnPool,
    VolumeResizeOnPoolFailed,
)
from schemas.sagas import StepFailed, StepSucceeded
from schemas.snapshot import (
    CreateSnapshotOnPool,
    DeleteSnapshotOnPool,
    RevertVolumeOnPool,
    SnapshotCreatedOnPool,
    SnapshotDeletedOnPool,
    SnapshotKind,
    VolumeRevertedOnPool,
    VolumeRevertOnPoolFailed,
)
from schemas.vm import DescribeVm, PowerState, StartVm, StopVm, VmDescribed, VmStarted, VmStopped
from tests.integration.storage_stack import Stack, define_vm, fail_without_libvirt, pool_directory, vm_is_active

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Stack]:
    fail_without_libvirt()
    opened = await Stack.open(database_url, amqp_url, namespace)
    await opened.start_agent("kvm1.lab", "c1")
    yield opened
    await opened.close()


async def attach(stack: Stack, root: Path, **route: Unpack[AgentRoute]) -> UUID:
    pool_id = uuid4()
    command = AttachPoolToHost(pool_id=pool_id, plugin="qcow2fs", config={"path": str(root)}, **route)
    attached = await stack.answer(await stack.send(command))
    assert isinstance(attached.payload, PoolAttachedToHost), attached.payload
    assert attached.payload.capacity_bytes > 0
    return pool_id


async def test_volume_and_snapshot_life_cycle_on_the_host_queue(stack: Stack, tmp_path: Path) -> None:
    root = pool_directory(tmp_path)
    pool_id = await attach(stack, root, host="kvm1.lab")
    volume_id = uuid4()

    created = await stack.answer(
        await stack.send(CreateVolumeOnPool(pool_id=pool_id, volume_id=volume_id, size_bytes=MIB, host="kvm1.lab"))
    )
    assert isinstance(created.payload, VolumeCreatedOnPool)
    assert Path(created.payload.locator).exists()  # noqa: ASYNC240  # a test's quick look

    resized = await stack.answer(
        await stack.send(
            ResizeVolumeOnPool(pool_id=pool_id, volume_id=volume_id, new_size_bytes=2 * MIB, host="kvm1.lab")
        )
    )
    assert isinstance(resized.payload, VolumeResizedOnPool)
    assert resized.payload.new_size_bytes == 2 * MIB
    shrink = await stack.answer(
        await stack.send(ResizeVolumeOnPool(pool_id=pool_id, volume_id=volume_id, new_size_bytes=MIB, host="kvm1.lab"))
    )
    assert isinstance(shrink.payload, VolumeResizeOnPoolFailed)
    assert shrink.payload.error.field == "new_size_bytes"

    snapshot_id = uuid4()
    snapshot = await stack.answer(
        await stack.send(
            CreateSnapshotOnPool(
                pool_id=pool_id, volume_id=volume_id, snapshot_id=snapshot_id, kind=SnapshotKind.DELTA, host="kvm1.lab"
            )
        )
    )
    assert isinstance(snapshot.payload, SnapshotCreatedOnPool)
    reverted = await stack.answer(
        await stack.send(
            RevertVolumeOnPool(pool_id=pool_id, volume_id=volume_id, snapshot_id=snapshot_id, host="kvm1.lab")
        )
    )
    assert isinstance(reverted.payload, VolumeRevertedOnPool)
    for _ in range(2):  # deleting twice is fine: the second finds it gone
        dropped = await stack.answer(
            await stack.send(
                DeleteSnapshotOnPool(pool_id=pool_id, volume_id=volume_id, snapshot_id=snapshot_id, host="kvm1.lab")
            )
        )
        assert isinstance(dropped.payload, SnapshotDeletedOnPool)
    deleted = await stack.answer(
        await stack.send(DeleteVolumeOnPool(pool_id=pool_id, volume_id=volume_id, host="kvm1.lab"))
    )
    assert isinstance(deleted.payload, VolumeDeletedOnPool)
    assert not Path(created.payload.locator).exists()  # noqa: ASYNC240  # a test's quick look


async def test_cluster_queue_reaches_an_agent_that_reopens_the_pool_from_its_record(
    stack: Stack, tmp_path: Path
) -> None:
    pool_id = await attach(stack, pool_directory(tmp_path), cluster_id="c1")
    # A second agent of the cluster, with no driver open yet, may take the next cluster command.
    await stack.start_agent("kvm2.lab", "c1")
    for _ in range(3):
        stats = await stack.answer(await stack.send(CollectPoolStats(pool_id=pool_id, cluster_id="c1")))
        assert isinstance(stats.payload, PoolStatsReported)
        assert stats.payload.capacity_bytes > 0


async def test_a_config_missing_a_field_is_refused_naming_it_without_the_secret(stack: Stack, tmp_path: Path) -> None:
    secret = "s3cr3t-" + uuid4().hex
    command = AttachPoolToHost(pool_id=uuid4(), plugin="qcow2fs", config={"qemu_img": secret}, host="kvm1.lab")
    failed = await stack.answer(await stack.send(command))
    assert isinstance(failed.payload, PoolAttachToHostFailed)
    assert failed.payload.error.field == "path"
    assert secret not in failed.payload.model_dump_json()
    async with stack.pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM agent.pools") == 0
        journal = await connection.fetch("SELECT type, payload::text AS payload FROM bus.journal")
    assert journal
    assert all(secret not in row["payload"] for row in journal)


async def test_saga_steps_get_step_replies_and_a_stale_fencing_token_is_refused(stack: Stack, tmp_path: Path) -> None:
    vm_id = define_vm(tmp_path / "disk.qcow2", running=True)
    saga_id = uuid4()

    described = await stack.answer(await stack.send(DescribeVm(vm_id=vm_id, host="kvm1.lab"), saga_id=saga_id, step=1))
    assert isinstance(described.payload, VmDescribed)
    assert described.payload.power_state is PowerState.RUNNING
    assert described.payload.disks[0].source == str(tmp_path / "disk.qcow2")
    assert described.saga_id == saga_id
    assert described.step == 1

    stopped = await stack.answer(
        await stack.send(StopVm(vm_id=vm_id, host="kvm1.lab"), saga_id=saga_id, step=2, fencing_token=7)
    )
    assert isinstance(stopped.payload, VmStopped)
    assert stopped.payload.was_running
    assert not vm_is_active(vm_id)

    stale = await stack.answer(
        await stack.send(StartVm(vm_id=vm_id, host="kvm1.lab"), saga_id=uuid4(), step=1, fencing_token=6)
    )
    assert isinstance(stale.payload, StepFailed)
    assert stale.payload.error.code == "ABORTED"
    assert not vm_is_active(vm_id)

    started = await stack.answer(
        await stack.send(StartVm(vm_id=vm_id, host="kvm1.lab"), saga_id=saga_id, step=3, fencing_token=7)
    )
    assert isinstance(started.payload, VmStarted)
    assert started.payload.was_stopped
    assert vm_is_active(vm_id)

    unknown = await stack.answer(await stack.send(DescribeVm(vm_id=uuid4(), host="kvm1.lab"), saga_id=saga_id, step=4))
    assert isinstance(unknown.payload, StepFailed)
    assert unknown.payload.error.code == "NOT_FOUND"


async def test_describe_answers_a_request(stack: Stack, tmp_path: Path) -> None:
    from schemas import Envelope

    vm_id = define_vm(tmp_path / "disk.qcow2", running=False)
    reply = await stack.bus.request(Envelope.wrap(DescribeVm(vm_id=vm_id, host="kvm1.lab")), timeout=10)
    assert isinstance(reply.payload, VmDescribed)
    assert reply.payload.power_state is PowerState.STOPPED


async def test_a_plugin_fault_becomes_a_failure_and_the_volume_is_unchanged(stack: Stack, tmp_path: Path) -> None:
    pool_id = await attach(stack, pool_directory(tmp_path), host="kvm1.lab")
    volume_id, snapshot_id = uuid4(), uuid4()
    await stack.answer(
        await stack.send(CreateVolumeOnPool(pool_id=pool_id, volume_id=volume_id, size_bytes=MIB, host="kvm1.lab")),
        VolumeCreatedOnPool,
    )
    await stack.answer(
        await stack.send(
            CreateSnapshotOnPool(
                pool_id=pool_id, volume_id=volume_id, snapshot_id=snapshot_id, kind=SnapshotKind.FULL, host="kvm1.lab"
            )
        ),
        SnapshotCreatedOnPool,
    )
    revert = RevertVolumeOnPool(pool_id=pool_id, volume_id=volume_id, snapshot_id=snapshot_id, host="kvm1.lab")
    with faults.armed("qcow2fs.revert.before_switch"):
        failed = await stack.answer(await stack.send(revert))
    assert isinstance(failed.payload, VolumeRevertOnPoolFailed)
    assert "qcow2fs.revert.before_switch" in failed.payload.error.message
    # In a saga the same fault is a step failure; once disarmed, the same revert goes through.
    again = await stack.answer(await stack.send(revert, saga_id=uuid4(), step=1))
    assert isinstance(again.payload, VolumeRevertedOnPool | StepSucceeded)
    assert json.loads(again.payload.model_dump_json())["volume_id"] == str(volume_id)
