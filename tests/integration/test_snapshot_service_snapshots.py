"""Volume snapshots on the real servers: full then deltas up to `snapshot.delta.max`; refusals that change
nothing (a volume not Ready; reverting a volume of a running VM directly); a revert once the VM is stopped."""

from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest

from schemas import Envelope, ErrorInfo
from schemas.snapshot import (
    CreateSnapshot,
    CreateSnapshotOnPool,
    DeleteSnapshot,
    RevertSnapshot,
    RevertVolumeOnPool,
    SnapshotCreateFailed,
    SnapshotRevertFailed,
)
from schemas.snapshot_queries import ListSnapshots, SnapshotsListed
from schemas.storage import VolumeState, VolumeStateChanged
from schemas.vm import VmStarted, VmStopped
from services.snapshot.deps import SnapshotDeps
from tests.integration.snapshot_service_support import HOST, Stack, eventually, open_stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Stack]:
    async for opened in open_stack(database_url, amqp_url, namespace):
        yield opened


async def ready_volume(stack: Stack, *, vm_id: UUID | None = None) -> UUID:
    volume_id = await stack.add_volume(vm_id=vm_id)

    async def known() -> bool:
        return bool(
            await stack.fetchval(
                "SELECT count(*) FROM snapshot.volumes WHERE size_bytes IS NOT NULL AND pool_id IS NOT NULL "
                "AND volume_id = $1",
                volume_id,
            )
        )

    await eventually(known, what="the volume is known")
    return volume_id


async def take_snapshot(stack: Stack, volume_id: UUID) -> UUID:
    snapshot_id = uuid4()
    await stack.bus.publish(
        Envelope.wrap(CreateSnapshot(snapshot_id=snapshot_id, volume_id=volume_id, name="s"), producer="test")
    )

    async def created() -> bool:
        state = await stack.fetchval("SELECT state FROM snapshot.snapshots WHERE snapshot_id = $1", snapshot_id)
        return state == "CreatedOnPrimary"

    await eventually(created, what=f"snapshot {snapshot_id} is CreatedOnPrimary")
    return snapshot_id


async def test_a_chain_is_full_then_deltas_up_to_delta_max_then_full_again(stack: Stack) -> None:
    await stack.start_service(SnapshotDeps(delta_max=2))
    volume_id = await ready_volume(stack)
    taken = [await take_snapshot(stack, volume_id) for _ in range(4)]
    async with stack.pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT snapshot_id, kind, parent_id FROM snapshot.snapshots WHERE volume_id = $1 ORDER BY created_at",
            volume_id,
        )
    assert [row["kind"] for row in rows] == ["full", "delta", "delta", "full"]
    assert [row["parent_id"] for row in rows] == [None, taken[0], taken[1], None]
    sent = stack.agent.received
    assert all(envelope.saga_id is None for envelope in sent)


async def test_a_snapshot_of_a_volume_that_is_not_ready_is_refused_and_nothing_is_recorded(stack: Stack) -> None:
    await stack.start_service()
    volume_id = await ready_volume(stack)
    await stack.bus.publish(
        Envelope.wrap(
            VolumeStateChanged(volume_id=volume_id, old_state=VolumeState.READY, new_state=VolumeState.MIGRATING),
            producer="storage@test",
        )
    )

    async def migrating() -> bool:
        state = await stack.fetchval("SELECT state FROM snapshot.volumes WHERE volume_id = $1", volume_id)
        return state == "Migrating"

    await eventually(migrating, what="the volume is Migrating")
    command = CreateSnapshot(snapshot_id=uuid4(), volume_id=volume_id, name="s")
    reply = await stack.bus.request(Envelope.wrap(command, producer="test"), timeout=10)
    assert isinstance(reply.payload, SnapshotCreateFailed)
    assert reply.payload.error.code == "FAILED_PRECONDITION"
    assert "Migrating" in reply.payload.error.message
    assert await stack.fetchval("SELECT count(*) FROM snapshot.snapshots") == 0
    assert stack.agent.received == []


async def test_reverting_a_volume_of_a_running_vm_directly_is_refused_and_changes_nothing(stack: Stack) -> None:
    await stack.start_service()
    vm_id = uuid4()
    volume_id = await ready_volume(stack, vm_id=vm_id)
    snapshot_id = await take_snapshot(stack, volume_id)
    newest = await take_snapshot(stack, volume_id)
    await stack.bus.publish(Envelope.wrap(VmStarted(vm_id=vm_id, host=HOST, was_stopped=True), producer="agent@test"))

    async def running() -> bool:
        state = await stack.fetchval("SELECT power_state FROM snapshot.vm_power WHERE vm_id = $1", vm_id)
        return state == "running"

    await eventually(running, what="the VM is known to run")
    reply = await stack.bus.request(Envelope.wrap(RevertSnapshot(snapshot_id=snapshot_id), producer="test"), timeout=10)
    assert isinstance(reply.payload, SnapshotRevertFailed)
    assert reply.payload.error.code == "FAILED_PRECONDITION"
    assert f"VM {vm_id}, which is running" in reply.payload.error.message
    assert "stop the VM first" in reply.payload.error.message
    assert reply.payload.volume_id == volume_id
    assert stack.agent.of_type(RevertVolumeOnPool) == []
    assert await stack.fetchval("SELECT count(*) FROM snapshot.operations") == 0
    base = await stack.fetchval("SELECT base_snapshot_id FROM snapshot.volumes WHERE volume_id = $1", volume_id)
    assert base == newest

    # Stopped, the same volume may be reverted.
    await stack.bus.publish(Envelope.wrap(VmStopped(vm_id=vm_id, host=HOST, was_running=True), producer="agent@test"))

    async def stopped() -> bool:
        state = await stack.fetchval("SELECT power_state FROM snapshot.vm_power WHERE vm_id = $1", vm_id)
        return state == "stopped"

    await eventually(stopped, what="the VM is known to be stopped")
    await stack.bus.publish(Envelope.wrap(RevertSnapshot(snapshot_id=snapshot_id), producer="test"))

    async def reverted() -> bool:
        base = await stack.fetchval("SELECT base_snapshot_id FROM snapshot.volumes WHERE volume_id = $1", volume_id)
        return base == snapshot_id

    await eventually(reverted, what="the volume is reverted")
    assert len(stack.agent.of_type(RevertVolumeOnPool)) == 1


async def test_a_vm_whose_power_state_is_unknown_is_treated_as_running(stack: Stack) -> None:
    await stack.start_service()
    volume_id = await ready_volume(stack, vm_id=uuid4())
    snapshot_id = await take_snapshot(stack, volume_id)
    reply = await stack.bus.request(Envelope.wrap(RevertSnapshot(snapshot_id=snapshot_id), producer="test"), timeout=10)
    assert isinstance(reply.payload, SnapshotRevertFailed)
    assert "unknown" in reply.payload.error.message
    assert stack.agent.of_type(RevertVolumeOnPool) == []


async def test_a_deleted_snapshot_is_destroyed_and_cannot_be_reverted_to(stack: Stack) -> None:
    await stack.start_service()
    volume_id = await ready_volume(stack)
    snapshot_id = await take_snapshot(stack, volume_id)
    await stack.bus.publish(Envelope.wrap(DeleteSnapshot(snapshot_id=snapshot_id), producer="test"))

    async def destroyed() -> bool:
        state = await stack.fetchval("SELECT state FROM snapshot.snapshots WHERE snapshot_id = $1", snapshot_id)
        return state == "Destroyed"

    await eventually(destroyed, what="the snapshot is Destroyed")
    reply = await stack.bus.request(Envelope.wrap(RevertSnapshot(snapshot_id=snapshot_id), producer="test"), timeout=10)
    assert isinstance(reply.payload, SnapshotRevertFailed)
    assert "Destroyed" in reply.payload.error.message


async def test_a_plugin_that_died_midway_is_asked_again_and_a_final_error_is_not(stack: Stack) -> None:
    await stack.start_service()
    volume_id = await ready_volume(stack)
    crash = ErrorInfo(code="INTERNAL", error_class="StrataError", message="injected crash at fault point")
    stack.agent.failures = [crash, crash]
    snapshot_id = await take_snapshot(stack, volume_id)  # the third attempt finishes it
    assert created_on_pool(stack, snapshot_id) == 3

    refused = ErrorInfo(code="INVALID_ARGUMENT", error_class="InvalidArgument", message="bad volume")
    stack.agent.failures = [refused]
    failing = uuid4()
    await stack.bus.publish(
        Envelope.wrap(CreateSnapshot(snapshot_id=failing, volume_id=volume_id, name="s"), producer="test")
    )

    async def errored() -> bool:
        state = await stack.fetchval("SELECT state FROM snapshot.snapshots WHERE snapshot_id = $1", failing)
        return state == "Error"

    await eventually(errored, what="the snapshot is in Error")
    assert created_on_pool(stack, failing) == 1


def created_on_pool(stack: Stack, snapshot_id: UUID) -> int:
    """How many times the agent was asked to take `snapshot_id`."""
    payloads = [envelope.payload for envelope in stack.agent.of_type(CreateSnapshotOnPool)]
    return sum(1 for p in payloads if isinstance(p, CreateSnapshotOnPool) and p.snapshot_id == snapshot_id)


async def test_snapshots_are_listed_and_shown_over_request_reply(stack: Stack) -> None:
    await stack.start_service(SnapshotDeps(delta_max=16))
    volume_id = await ready_volume(stack)
    first = await take_snapshot(stack, volume_id)
    second = await take_snapshot(stack, volume_id)
    reply = await stack.bus.request(Envelope.wrap(ListSnapshots(volume_id=volume_id), producer="test"), timeout=10)
    assert isinstance(reply.payload, SnapshotsListed)
    assert [info.snapshot_id for info in reply.payload.snapshots] == [second, first]
    assert [info.kind.value for info in reply.payload.snapshots] == ["delta", "full"]
    assert reply.payload.snapshots[0].parent_id == first
    shown = await stack.bus.request(Envelope.wrap(ListSnapshots(snapshot_id=first), producer="test"), timeout=10)
    assert isinstance(shown.payload, SnapshotsListed)
    assert [info.state.value for info in shown.payload.snapshots] == ["CreatedOnPrimary"]
