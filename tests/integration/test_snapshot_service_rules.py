"""Rules the snapshot service keeps about the world around it: a pool in maintenance takes no new snapshot
operation; an Expunged volume takes no policy and its old policies never fire; one policy per interval per volume."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from schemas import Envelope
from schemas.snapshot import (
    CreateSnapshot,
    CreateSnapshotPolicy,
    IntervalType,
    SnapshotCreateFailed,
    SnapshotPolicyCreated,
    SnapshotPolicyCreateFailed,
)
from schemas.storage import PoolState, PoolStateChanged, VolumeDeleted
from tests.integration.snapshot_service_support import Stack, eventually, open_stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Stack]:
    async for opened in open_stack(database_url, amqp_url, namespace):
        yield opened


async def known_volume(stack: Stack) -> tuple[UUID, UUID]:
    """A Ready volume the service knows (its pool and size from `volume.created`); its id and its pool's."""
    volume_id = await stack.add_volume()

    async def pool_of() -> object:
        return await stack.fetchval(
            "SELECT pool_id FROM snapshot.volumes WHERE volume_id = $1 AND size_bytes IS NOT NULL", volume_id
        )

    await eventually(pool_of, what="the volume is known")
    pool_id = await pool_of()
    assert isinstance(pool_id, UUID)
    return volume_id, pool_id


async def pool_becomes(stack: Stack, pool_id: UUID, old: PoolState, new: PoolState) -> None:
    await stack.bus.publish(
        Envelope.wrap(PoolStateChanged(pool_id=pool_id, old_state=old, new_state=new), producer="storage@test")
    )

    async def applied() -> bool:
        return await stack.fetchval("SELECT state FROM snapshot.pools WHERE pool_id = $1", pool_id) == new.value

    await eventually(applied, what=f"the pool is {new}")


def policy(volume_id: UUID, interval: IntervalType = IntervalType.HOURLY, schedule: str = "05") -> CreateSnapshotPolicy:
    return CreateSnapshotPolicy(
        policy_id=uuid4(), volume_id=volume_id, interval_type=interval, schedule=schedule, max_snaps=2
    )


async def test_a_pool_in_maintenance_takes_no_snapshot_and_takes_them_again_once_up(stack: Stack) -> None:
    await stack.start_service()
    volume_id, pool_id = await known_volume(stack)
    await pool_becomes(stack, pool_id, PoolState.UP, PoolState.PREPARE_FOR_MAINTENANCE)
    await pool_becomes(stack, pool_id, PoolState.PREPARE_FOR_MAINTENANCE, PoolState.MAINTENANCE)

    command = CreateSnapshot(snapshot_id=uuid4(), volume_id=volume_id, name="during")
    reply = await stack.bus.request(Envelope.wrap(command, producer="test"), timeout=10)
    assert isinstance(reply.payload, SnapshotCreateFailed)
    assert (reply.payload.error.code, reply.payload.error.field) == ("FAILED_PRECONDITION", "pool_id")
    assert "Maintenance" in reply.payload.error.message
    assert await stack.fetchval("SELECT count(*) FROM snapshot.snapshots") == 0
    assert stack.agent.received == []

    await pool_becomes(stack, pool_id, PoolState.MAINTENANCE, PoolState.CANCEL_MAINTENANCE)
    await pool_becomes(stack, pool_id, PoolState.CANCEL_MAINTENANCE, PoolState.UP)
    again = CreateSnapshot(snapshot_id=uuid4(), volume_id=volume_id, name="after")
    await stack.bus.publish(Envelope.wrap(again, producer="test"))

    async def taken() -> bool:
        state = await stack.fetchval("SELECT state FROM snapshot.snapshots WHERE snapshot_id = $1", again.snapshot_id)
        return state == "CreatedOnPrimary"

    await eventually(taken, what="the snapshot taken once the pool is Up")


async def test_an_older_pool_state_arriving_late_changes_nothing(stack: Stack) -> None:
    await stack.start_service()
    _, pool_id = await known_volume(stack)
    now = datetime.now(UTC)
    newer = Envelope.wrap(
        PoolStateChanged(pool_id=pool_id, old_state=PoolState.UP, new_state=PoolState.MAINTENANCE), producer="storage"
    ).model_copy(update={"occurred_at": now})
    older = Envelope.wrap(
        PoolStateChanged(pool_id=pool_id, old_state=PoolState.MAINTENANCE, new_state=PoolState.UP), producer="storage"
    ).model_copy(update={"occurred_at": now - timedelta(minutes=1)})
    await stack.bus.publish(newer)

    async def in_maintenance() -> bool:
        return await stack.fetchval("SELECT state FROM snapshot.pools WHERE pool_id = $1", pool_id) == "Maintenance"

    await eventually(in_maintenance, what="the pool in Maintenance")
    await stack.bus.publish(older)
    marker = uuid4()  # a later message on the same queue: once it is handled, the older one was too
    await stack.bus.request(Envelope.wrap(policy(uuid4()).model_copy(update={"policy_id": marker}), producer="t"))
    assert await in_maintenance()


async def test_an_expunged_volume_takes_no_policy_and_its_policy_never_fires(stack: Stack) -> None:
    await stack.start_service(scheduler_poll=0.05)
    volume_id, pool_id = await known_volume(stack)
    created = await stack.bus.request(Envelope.wrap(policy(volume_id), producer="test"), timeout=10)
    assert isinstance(created.payload, SnapshotPolicyCreated)
    deleted = VolumeDeleted(volume_id=volume_id, pool_id=pool_id, entity_version=5)
    await stack.bus.publish(Envelope.wrap(deleted, producer="storage@test"))

    async def expunged() -> bool:
        return await stack.fetchval("SELECT state FROM snapshot.volumes WHERE volume_id = $1", volume_id) == "Expunged"

    await eventually(expunged, what="the volume Expunged")
    refused = await stack.bus.request(
        Envelope.wrap(policy(volume_id, IntervalType.DAILY, "30:02"), producer="test"), timeout=10
    )
    assert isinstance(refused.payload, SnapshotPolicyCreateFailed)
    assert (refused.payload.error.code, refused.payload.error.field) == ("FAILED_PRECONDITION", "volume_id")

    # Its old policy falls due: the scheduler passes it over (a later due policy of a live volume runs, so the
    # scheduler did look at both).
    await stack.fetchval(
        "UPDATE snapshot.policies SET next_run_at = now() - interval '2 hours' WHERE volume_id = $1", volume_id
    )
    live_volume, _ = await known_volume(stack)
    live = await stack.bus.request(Envelope.wrap(policy(live_volume), producer="test"), timeout=10)
    assert isinstance(live.payload, SnapshotPolicyCreated)
    await stack.fetchval(
        "UPDATE snapshot.policies SET next_run_at = now() - interval '1 hour' WHERE volume_id = $1", live_volume
    )

    async def live_policy_ran() -> bool:
        return bool(await stack.fetchval("SELECT count(*) FROM snapshot.snapshots WHERE volume_id = $1", live_volume))

    await eventually(live_policy_ran, timeout=15, what="the live volume's policy ran")
    assert await stack.fetchval("SELECT count(*) FROM snapshot.snapshots WHERE volume_id = $1", volume_id) == 0


async def test_a_second_policy_of_the_same_interval_is_refused_naming_the_first(stack: Stack) -> None:
    await stack.start_service()
    volume_id, _ = await known_volume(stack)
    first = policy(volume_id)
    created = await stack.bus.request(Envelope.wrap(first, producer="test"), timeout=10)
    assert isinstance(created.payload, SnapshotPolicyCreated)

    second = await stack.bus.request(Envelope.wrap(policy(volume_id, schedule="35"), producer="test"), timeout=10)
    assert isinstance(second.payload, SnapshotPolicyCreateFailed)
    assert (second.payload.error.code, second.payload.error.field) == ("ALREADY_EXISTS", "interval_type")
    assert str(first.policy_id) in second.payload.error.message

    again = await stack.bus.request(Envelope.wrap(first, producer="test"), timeout=10)  # the same command: idempotent
    assert isinstance(again.payload, SnapshotPolicyCreated)
    daily = await stack.bus.request(Envelope.wrap(policy(volume_id, IntervalType.DAILY, "30:02"), producer="t"))
    assert isinstance(daily.payload, SnapshotPolicyCreated)
    assert await stack.fetchval("SELECT count(*) FROM snapshot.policies WHERE volume_id = $1", volume_id) == 2
