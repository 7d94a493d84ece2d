"""Coalescing a delta chain, every daemon a process of its own, on the real servers: six snapshots with data
written between them; snapshots 2, 3 and 5 deleted (5 by its policy's retention). Each deletion hides a snapshot
that the next one needs and starts a coalesce, which merges it into that child. Every remaining snapshot still
reverts to its own data, and the pool's files shrink by the merged deltas' size. Then the same with the agent
SIGKILLed (or its plugin failing) at each step of a merge, and restarted.
"""

import uuid
from collections.abc import AsyncIterator
from uuid import UUID

import pytest
import pytest_asyncio

from schemas.chain import ChainDescribed, DescribeChain
from schemas.envelope import Envelope
from schemas.snapshot import (
    CreateSnapshot,
    CreateSnapshotPolicy,
    DeleteSnapshot,
    IntervalType,
    RevertSnapshot,
)
from schemas.storage import CreateVolume
from tests.e2e.cloud_support import (
    KillableDaemon,
    add_pool,
    allocated_bytes,
    holds_mib,
    open_cloud,
    strata,
    write_mib,
)
from tests.e2e.revert_vm_support import CLUSTER, HOST, Cloud

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
DELTA_MIB = 4  # each snapshot's delta: 4 MiB of its own pattern at the start of the volume
LIVE = 0x70  # written after the last snapshot


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cloud(postgres_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cloud]:
    async with open_cloud(postgres_url, amqp_url, tmp_path_factory.mktemp("coalesce")) as opened:
        await add_pool(opened, opened.pool_id, opened.pool_dir)
        yield opened


def pattern(index: int) -> int:
    return 0x10 * index + 1


async def new_volume(cloud: Cloud) -> tuple[UUID, str]:
    volume_id = uuid.uuid4()
    await cloud.publish(
        CreateVolume(
            volume_id=volume_id,
            name=f"chain-{volume_id.hex[:6]}",
            size_bytes=32 << 20,
            zone_id=cloud.zone_id,
            pool_id=cloud.pool_id,
            host=HOST,
            cluster_id=CLUSTER,
        )
    )

    async def ready() -> bool:
        state = await cloud.value("SELECT state FROM storage.volumes WHERE volume_id = $1", volume_id)
        known = await cloud.value(
            "SELECT count(*) FROM snapshot.volumes WHERE size_bytes IS NOT NULL AND pool_id IS NOT NULL "
            "AND volume_id = $1",
            volume_id,
        )
        return state == "Ready" and known == 1

    await cloud.wait(ready, "the volume Ready and known to the snapshot service")
    return volume_id, str(await cloud.value("SELECT locator FROM storage.volumes WHERE volume_id = $1", volume_id))


async def snapshot(cloud: Cloud, volume_id: UUID, name: str, *, policy_id: UUID | None = None) -> UUID:
    snapshot_id = uuid.uuid4()
    await cloud.publish(CreateSnapshot(snapshot_id=snapshot_id, volume_id=volume_id, name=name, policy_id=policy_id))

    async def taken() -> bool:
        state = await cloud.value("SELECT state FROM snapshot.snapshots WHERE snapshot_id = $1", snapshot_id)
        return state == "CreatedOnPrimary"

    await cloud.wait(taken, f"snapshot {name} taken")
    return snapshot_id


async def coalesced(cloud: Cloud, volume_id: UUID, sagas: int) -> None:
    """Wait until `sagas` coalesces of the volume completed, none runs, and no snapshot of it stays hidden."""

    async def done() -> bool:
        rows = await cloud.rows(
            "SELECT status FROM sagas.instances WHERE name = 'snapshot.chain.coalesce' "
            "AND input->'payload'->>'volume_id' = $1",
            str(volume_id),
        )
        hidden = await cloud.value("SELECT count(*) FROM snapshot.snapshots WHERE volume_id = $1 AND hidden", volume_id)
        statuses = [row["status"] for row in rows]
        failed = [s for s in statuses if s not in {"RUNNING", "COMPLETED"}]
        assert not failed, f"a coalesce of {volume_id} ended {failed}"
        return len(statuses) >= sagas and all(s == "COMPLETED" for s in statuses) and hidden == 0

    await cloud.wait(done, f"{sagas} coalesces of {volume_id} completed", timeout=90)


async def describe(cloud: Cloud, volume_id: UUID) -> ChainDescribed:
    reply = await cloud.bus.request(Envelope.wrap(DescribeChain(volume_id=volume_id), producer="e2e"), timeout=15)
    assert isinstance(reply.payload, ChainDescribed)
    return reply.payload


async def run_story(cloud: Cloud, *, on_first_merge: str | None = None) -> None:
    """The six snapshots, the three deletions and their coalesces, then the checks.

    `on_first_merge` names a fault point at which the agent SIGKILLs itself during the first merge (it is
    restarted once dead); None runs without a fault.
    """
    volume_id, path = await new_volume(cloud)
    policy_id = uuid.uuid4()
    await cloud.publish(
        CreateSnapshotPolicy(
            policy_id=policy_id,
            volume_id=volume_id,
            interval_type=IntervalType.DAILY,
            schedule="00:03",
            max_snaps=1,
            timezone="UTC",
        )
    )
    await cloud.wait(
        lambda: cloud.value("SELECT count(*) FROM snapshot.policies WHERE policy_id = $1", policy_id),
        "the policy",
    )
    taken: dict[int, UUID] = {}
    for index in range(1, 7):
        await write_mib(path, pattern(index), DELTA_MIB)
        taken[index] = await snapshot(cloud, volume_id, f"s{index}", policy_id=policy_id if index in (5, 6) else None)
    await write_mib(path, LIVE, DELTA_MIB)
    # s6 was taken by the policy that keeps one snapshot: its retention deleted s5, which s6 needs.
    await cloud.wait(
        lambda: cloud.value("SELECT state = 'Destroyed' FROM snapshot.snapshots WHERE snapshot_id = $1", taken[5]),
        "s5 deleted by the policy's retention",
    )
    await coalesced(cloud, volume_id, 1)
    before = allocated_bytes(cloud.pool_dir)
    drawn = await strata(cloud, "snapshot", "chain", str(volume_id))
    assert "live volume" in drawn, drawn
    assert all(f"s{index} " in drawn for index in (1, 2, 3, 4, 6)), drawn
    assert "s5 " not in drawn, drawn

    agent = cloud.daemons["agent"]
    assert isinstance(agent, KillableDaemon)
    if on_first_merge is not None:
        agent.stop()
        agent.start_killed_at(on_first_merge)
    await cloud.publish(DeleteSnapshot(snapshot_id=taken[2]))
    if on_first_merge is not None:

        async def dead() -> bool:
            return not agent.alive

        await cloud.wait(dead, f"the agent killed itself at {on_first_merge}")
        agent.start()
    await coalesced(cloud, volume_id, 2)
    await cloud.publish(DeleteSnapshot(snapshot_id=taken[3]))
    await coalesced(cloud, volume_id, 3)

    chain = await describe(cloud, volume_id)
    live = {node.snapshot_id for node in chain.nodes if not node.hidden}
    assert live == {taken[1], taken[4], taken[6]}, chain
    assert not chain.pending
    assert not chain.orphans
    # Two more 4 MiB deltas merged (s2 into s3, s3 into s4): the pool's files shrink by their size.
    merged_size = 2 * DELTA_MIB << 20

    async def shrunk() -> bool:
        return before - allocated_bytes(cloud.pool_dir) >= merged_size * 0.95

    await cloud.wait(shrunk, f"the pool's files shrink by {merged_size} bytes from {before}")

    assert await holds_mib(path, LIVE, DELTA_MIB)
    for index in (1, 4, 6):  # each revert moves the volume's base, which says it is done
        target = taken[index]
        await cloud.publish(RevertSnapshot(snapshot_id=target))

        async def reverted(target: UUID = target) -> object:
            query = "SELECT base_snapshot_id = $2 FROM snapshot.volumes WHERE volume_id = $1"
            return await cloud.value(query, volume_id, target)

        await cloud.wait(reverted, f"the volume reverted to s{index}")
        assert await holds_mib(path, pattern(index), DELTA_MIB), f"s{index} does not hold its data"
    assert await cloud.value("SELECT count(*) FROM sagas.locks WHERE holder IS NOT NULL") == 0
    cloud.assert_alive()


async def test_deleted_middle_snapshots_are_merged_and_their_space_freed(cloud: Cloud) -> None:
    await run_story(cloud)


@pytest.mark.parametrize(
    "point",
    [
        "qcow2fs.coalesce.after_commit",  # the child's data is in the parent; the switch has not happened
        "qcow2fs.coalesce.after_pivot",  # the merged file took the child's name; the chain is not recorded yet
    ],
)
async def test_the_agent_killed_mid_merge_finishes_it_after_a_restart(cloud: Cloud, point: str) -> None:
    await run_story(cloud, on_first_merge=point)


async def test_a_plugin_failing_mid_merge_is_asked_again(cloud: Cloud) -> None:
    cloud.restart_agent(faults=("qcow2fs.coalesce.after_commit",))
    await run_story(cloud)
