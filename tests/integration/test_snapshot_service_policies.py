"""Snapshot policies on the real servers: a bad schedule is refused naming the field and leaves nothing; the
schedule lives in the table, so a restarted service runs a policy that fell due while it was down."""

from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest

from schemas import Envelope
from schemas.snapshot import (
    CreateSnapshotPolicy,
    IntervalType,
    SnapshotPolicyCreated,
    SnapshotPolicyCreateFailed,
)
from schemas.snapshot_queries import ListSnapshotPolicies, SnapshotPoliciesListed
from tests.integration.snapshot_service_support import Stack, eventually, open_stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Stack]:
    async for opened in open_stack(database_url, amqp_url, namespace):
        yield opened


async def known(stack: Stack, volume_id: UUID) -> bool:
    return bool(
        await stack.fetchval(
            "SELECT count(*) FROM snapshot.volumes WHERE size_bytes IS NOT NULL AND pool_id IS NOT NULL "
            "AND volume_id = $1",
            volume_id,
        )
    )


@pytest.mark.parametrize(
    ("interval_type", "schedule", "timezone", "field"),
    [
        (IntervalType.HOURLY, "61", "UTC", "schedule"),
        (IntervalType.DAILY, "30", "UTC", "schedule"),
        (IntervalType.WEEKLY, "00:10:8", "UTC", "schedule"),
        (IntervalType.MONTHLY, "00:10:29", "UTC", "schedule"),
        (IntervalType.DAILY, "30:02", "Mars/Olympus", "timezone"),
    ],
)
async def test_a_bad_policy_is_refused_naming_the_field_and_changes_nothing(
    stack: Stack, interval_type: IntervalType, schedule: str, timezone: str, field: str
) -> None:
    await stack.start_service()
    volume_id = await stack.add_volume()
    await eventually(lambda: known(stack, volume_id), what="the volume is known")
    command = CreateSnapshotPolicy(
        policy_id=uuid4(),
        volume_id=volume_id,
        interval_type=interval_type,
        schedule=schedule,
        timezone=timezone,
        max_snaps=3,
    )
    reply = await stack.bus.request(Envelope.wrap(command, producer="test"), timeout=10)
    assert isinstance(reply.payload, SnapshotPolicyCreateFailed)
    assert reply.payload.error.field == field
    assert reply.payload.error.code == "INVALID_ARGUMENT"
    assert (schedule if field == "schedule" else timezone) in reply.payload.error.message
    assert await stack.fetchval("SELECT count(*) FROM snapshot.policies") == 0


async def test_a_policy_for_an_unknown_volume_is_refused(stack: Stack) -> None:
    await stack.start_service()
    command = CreateSnapshotPolicy(
        policy_id=uuid4(), volume_id=uuid4(), interval_type=IntervalType.HOURLY, schedule="05", max_snaps=2
    )
    reply = await stack.bus.request(Envelope.wrap(command, producer="test"), timeout=10)
    assert isinstance(reply.payload, SnapshotPolicyCreateFailed)
    assert reply.payload.error.code == "NOT_FOUND"
    assert await stack.fetchval("SELECT count(*) FROM snapshot.policies") == 0


async def test_the_scheduler_survives_a_restart_and_runs_a_policy_that_fell_due(stack: Stack) -> None:
    await stack.start_service()
    volume_id = await stack.add_volume()
    await eventually(lambda: known(stack, volume_id), what="the volume is known")
    policy_id = uuid4()
    command = CreateSnapshotPolicy(
        policy_id=policy_id,
        volume_id=volume_id,
        interval_type=IntervalType.DAILY,
        schedule="30:02",
        timezone="Europe/Paris",
        max_snaps=2,
    )
    reply = await stack.bus.request(Envelope.wrap(command, producer="test"), timeout=10)
    assert isinstance(reply.payload, SnapshotPolicyCreated)
    assert reply.payload.next_run_at == await stack.fetchval(
        "SELECT next_run_at FROM snapshot.policies WHERE policy_id = $1", policy_id
    )
    await stack.stop_service()

    # While the service is down its policy falls due (the table is the only record of when it runs).
    await stack.fetchval(
        "UPDATE snapshot.policies SET next_run_at = now() - interval '1 hour' WHERE policy_id = $1", policy_id
    )
    await stack.start_service()

    async def taken() -> int:
        return int(
            str(
                await stack.fetchval(
                    "SELECT count(*) FROM snapshot.snapshots WHERE policy_id = $1 AND state = 'CreatedOnPrimary'",
                    policy_id,
                )
            )
        )

    await eventually(taken, timeout=15, what="the overdue policy took its snapshot")
    next_run = await stack.fetchval("SELECT next_run_at FROM snapshot.policies WHERE policy_id = $1", policy_id)
    assert next_run == reply.payload.next_run_at  # the next run is the next 02:30 in Paris again
    assert await taken() == 1  # once, not once per missed run


async def test_retention_deletes_the_oldest_beyond_max_snaps(stack: Stack) -> None:
    await stack.start_service()
    volume_id = await stack.add_volume()
    await eventually(lambda: known(stack, volume_id), what="the volume is known")
    policy_id = uuid4()
    command = CreateSnapshotPolicy(
        policy_id=policy_id, volume_id=volume_id, interval_type=IntervalType.HOURLY, schedule="00", max_snaps=2
    )
    await stack.bus.request(Envelope.wrap(command, producer="test"), timeout=10)
    for run in range(1, 4):
        await stack.fetchval(
            f"UPDATE snapshot.policies SET next_run_at = now() - interval '{10 - run} hours' WHERE policy_id = $1",
            policy_id,
        )

        async def ran(expected: int = run) -> bool:
            count = await stack.fetchval("SELECT count(*) FROM snapshot.snapshots WHERE policy_id = $1", policy_id)
            return count == expected

        await eventually(ran, timeout=15, what=f"run {run}")

    async def kept() -> list[str]:
        async with stack.pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT state FROM snapshot.snapshots WHERE policy_id = $1 ORDER BY created_at", policy_id
            )
        return [row["state"] for row in rows]

    async def oldest_destroyed() -> bool:
        return await kept() == ["Destroyed", "CreatedOnPrimary", "CreatedOnPrimary"]

    await eventually(oldest_destroyed, timeout=15, what="the oldest snapshot is destroyed")


async def test_policies_are_listed_over_request_reply(stack: Stack) -> None:
    await stack.start_service()
    volume_id = await stack.add_volume()
    await eventually(lambda: known(stack, volume_id), what="the volume is known")
    policy_id = uuid4()
    command = CreateSnapshotPolicy(
        policy_id=policy_id, volume_id=volume_id, interval_type=IntervalType.WEEKLY, schedule="5:3:2", max_snaps=4
    )
    created = await stack.bus.request(Envelope.wrap(command, producer="test"), timeout=10)
    assert isinstance(created.payload, SnapshotPolicyCreated)
    reply = await stack.bus.request(
        Envelope.wrap(ListSnapshotPolicies(volume_id=volume_id), producer="test"), timeout=10
    )
    assert isinstance(reply.payload, SnapshotPoliciesListed)
    [policy] = reply.payload.policies
    assert (policy.policy_id, policy.schedule, policy.max_snaps) == (policy_id, "05:03:02", 4)
    assert policy.next_run_at == created.payload.next_run_at
    assert policy.next_run_at.isoweekday() == 1  # day 2 is Monday, CloudStack counts from Sunday
