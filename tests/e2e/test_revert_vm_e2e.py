"""Revert a running VM with three volumes, every daemon a process of its own, on the real servers; then the same
with a fault at each step in turn (a plugin error at a fault point, the agent killed with SIGKILL and restarted).

Whatever happens, the run ends with the VM reverted and running, or with the volumes as they were before and the
VM in its power state: no safety snapshot left, no volume left in RevertSnapshotting, no lock left held.
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg
import pytest
import pytest_asyncio

from bus.rabbit import RabbitTransport
from sagas.definitions.revert_vm import SAFETY_PREFIX
from sagas.definitions.snapshot_vm import volume_snapshot_id
from sagas.work import saga_id_for
from schemas import Envelope
from schemas.snapshot import (
    CreateVmSnapshot,
    RevertSnapshot,
    RevertVmToSnapshot,
    SnapshotRevertFailed,
    VolumeSnapshotPair,
)
from schemas.storage import AddPool, CreateVolume, PoolScope
from schemas.vm import DescribeVm, PowerState, VmDescribed
from tests.e2e.daemon_processes import every_daemon_queue
from tests.e2e.revert_vm_support import (
    CLUSTER,
    HOST,
    QUEUES,
    TEST_DOMAIN,
    Cloud,
    Daemon,
    bus_settings,
    daemon_env,
    holds_pattern,
    write_pattern,
)
from tests.helpers import assert_eventually, queues_consumed

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
OLD, NEW = 0x11, 0x22  # the data when the snapshots were taken, and the data written after


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cloud(postgres_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cloud]:
    name = f"strata_e2e_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    database_url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    namespace = f"t{uuid.uuid4().hex[:10]}"
    base = tmp_path_factory.mktemp("revert-vm")
    pool_dir = base / "pool"
    pool_dir.mkdir()
    env = daemon_env(database_url, amqp_url, namespace)
    daemons = {
        daemon: Daemon(daemon, env, base / f"{daemon}.log")
        for daemon in ("storage", "snapshot", "orchestrator", "agent")
    }
    queues = [f"{namespace}.{queue}" for queue in QUEUES]
    transport = RabbitTransport(bus_settings(namespace, amqp_url), purpose="e2e")
    await transport.start()
    db = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    opened = Cloud(database_url, namespace, pool_dir, daemons, transport, db)
    try:
        for daemon in daemons.values():
            daemon.start()
        # Events go to the queues bound when they are published: nothing starts before every daemon listens.
        await assert_eventually(lambda: queues_consumed(amqp_url, queues), timeout=60, what="every daemon consuming")
        await add_pool(opened)
        yield opened
    finally:
        for daemon in daemons.values():
            daemon.stop()
        await db.close()
        await transport.close()
        await transport.delete_namespace([*queues, *every_daemon_queue(namespace)])
        admin = await asyncpg.connect(postgres_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def add_pool(cloud: Cloud) -> None:
    await cloud.publish(
        AddPool(
            pool_id=cloud.pool_id,
            name="e2e-pool",
            plugin="qcow2fs",
            config={"path": str(cloud.pool_dir)},
            scope=PoolScope.HOST,
            zone_id=cloud.zone_id,
            cluster_id=CLUSTER,
            host=HOST,
        ),
        timeout=60,
    )

    async def up() -> bool:
        state = await cloud.value("SELECT state FROM storage.pools WHERE pool_id = $1", cloud.pool_id)
        known = await cloud.value("SELECT count(*) FROM snapshot.pools WHERE pool_id = $1", cloud.pool_id)
        return state == "Up" and known == 1

    await cloud.wait(up, "the pool is Up and known to the snapshot service", timeout=60)


@dataclass
class Vm:
    """The test VM's three volumes, their paths, and the snapshots of the VM snapshot to revert to."""

    volumes: list[UUID]
    paths: dict[UUID, str]
    snapshots: dict[UUID, UUID]


async def prepare_vm(cloud: Cloud) -> Vm:
    """Three new volumes of the VM holding OLD, snapshotted, then overwritten with NEW."""
    volumes = [uuid.uuid4() for _ in range(3)]
    for index, volume_id in enumerate(volumes):
        await cloud.publish(
            CreateVolume(
                volume_id=volume_id,
                name=f"disk{index}",
                size_bytes=1 << 20,
                zone_id=cloud.zone_id,
                pool_id=cloud.pool_id,
                vm_id=TEST_DOMAIN,
                host=HOST,
                cluster_id=CLUSTER,
            )
        )

    async def ready() -> bool:
        states = await cloud.rows("SELECT state FROM storage.volumes WHERE volume_id = ANY($1::uuid[])", volumes)
        known = await cloud.value(
            "SELECT count(*) FROM snapshot.volumes WHERE size_bytes IS NOT NULL AND pool_id IS NOT NULL "
            "AND volume_id = ANY($1::uuid[])",
            volumes,
        )
        return [row["state"] for row in states] == ["Ready"] * 3 and known == 3

    await cloud.wait(ready, "three volumes Ready and known to the snapshot service")
    rows = await cloud.rows("SELECT volume_id, locator FROM storage.volumes WHERE volume_id = ANY($1::uuid[])", volumes)
    paths = {row["volume_id"]: row["locator"] for row in rows}
    for volume_id in volumes:
        await write_pattern(paths[volume_id], OLD)
    vm_snapshot_id = uuid.uuid4()
    await cloud.publish(
        CreateVmSnapshot(
            vm_snapshot_id=vm_snapshot_id, vm_id=TEST_DOMAIN, name="before", volume_ids=tuple(volumes), host=HOST
        )
    )
    snapshots = {volume_id: volume_snapshot_id(vm_snapshot_id, volume_id) for volume_id in volumes}

    async def taken() -> bool:
        count = await cloud.value(
            "SELECT count(*) FROM snapshot.snapshots "
            "WHERE snapshot_id = ANY($1::uuid[]) AND state = 'CreatedOnPrimary' AND vm_snapshot_id = $2",
            list(snapshots.values()),
            vm_snapshot_id,
        )
        done = await cloud.value(
            "SELECT count(*) FROM sagas.instances WHERE name = 'vm.snapshot' AND status = 'COMPLETED' "
            "AND input->'payload'->>'vm_snapshot_id' = $1",
            str(vm_snapshot_id),
        )
        return count == 3 and done == 1

    await cloud.wait(taken, "the VM snapshot of the three volumes")
    for volume_id in volumes:
        await write_pattern(paths[volume_id], NEW)
    return Vm(volumes, paths, snapshots)


async def revert(cloud: Cloud, vm: Vm) -> UUID:
    command = RevertVmToSnapshot(
        vm_id=TEST_DOMAIN,
        vm_snapshot_id=uuid.uuid4(),
        host=HOST,
        snapshots=tuple(VolumeSnapshotPair(volume_id=v, snapshot_id=s) for v, s in vm.snapshots.items()),
    )
    envelope: Envelope = await cloud.publish(command)
    return saga_id_for(envelope.message_id)


async def ends(cloud: Cloud, saga_id: UUID, timeout: float = 60.0) -> str:
    async def ended() -> str | None:
        status = await cloud.value("SELECT status FROM sagas.instances WHERE saga_id = $1", saga_id)
        return str(status) if status in {"COMPLETED", "COMPENSATED", "FAILED", "STUCK"} else None

    try:
        await cloud.wait(ended, f"saga {saga_id} ends", timeout=timeout)
    except AssertionError:
        steps = await cloud.rows(
            "SELECT seq, kind, status, record->'command'->>'type' AS type, record->'error'->>'message' AS error, "
            "record->>'created_at' AS created, record->>'finished_at' AS finished "
            "FROM sagas.steps WHERE saga_id = $1 ORDER BY seq",
            saga_id,
        )
        status = await cloud.value("SELECT status FROM sagas.instances WHERE saga_id = $1", saga_id)
        events = await cloud.rows("SELECT * FROM sagas.events WHERE saga_id = $1 ORDER BY 1", saga_id)
        raise AssertionError(
            f"saga {saga_id} is {status}; steps: {[dict(step) for step in steps]}; "
            f"events: {[dict(event) for event in events]}"
        ) from None
    return str(await cloud.value("SELECT status FROM sagas.instances WHERE saga_id = $1", saga_id))


async def steps_done(cloud: Cloud, saga_id: UUID) -> int:
    return int(
        str(await cloud.value("SELECT count(*) FROM sagas.steps WHERE saga_id = $1 AND status = 'SUCCEEDED'", saga_id))
    )


async def assert_clean(cloud: Cloud, vm: Vm, saga_id: UUID, *, reverted: bool) -> None:
    """The data, the VM's power state, and nothing left behind."""
    for volume_id in vm.volumes:
        expected = OLD if reverted else NEW
        assert await holds_pattern(vm.paths[volume_id], expected), f"volume {volume_id} does not hold {expected:#x}"
    states = await cloud.rows("SELECT state FROM storage.volumes WHERE volume_id = ANY($1::uuid[])", vm.volumes)
    assert [row["state"] for row in states] == ["Ready"] * 3
    safety = await cloud.rows(
        "SELECT snapshot_id, state FROM snapshot.snapshots WHERE volume_id = ANY($1::uuid[]) AND name LIKE $2",
        vm.volumes,
        f"{SAFETY_PREFIX}%",
    )
    assert all(row["state"] == "Destroyed" for row in safety), [dict(row) for row in safety]
    on_disk = {path.stem for path in (cloud.pool_dir / "snapshots").glob("*.json")}
    assert not on_disk & {str(row["snapshot_id"]) for row in safety}, "a safety snapshot is left on the pool"
    assert await cloud.value("SELECT count(*) FROM sagas.locks WHERE holder = $1", saga_id) == 0
    reply = await cloud.bus.request(Envelope.wrap(DescribeVm(vm_id=TEST_DOMAIN, host=HOST), producer="e2e"), timeout=15)
    assert isinstance(reply.payload, VmDescribed)
    assert reply.payload.power_state is PowerState.RUNNING


async def test_a_running_vm_is_reverted_and_running_again(cloud: Cloud) -> None:
    vm = await prepare_vm(cloud)
    saga_id = await revert(cloud, vm)
    assert await ends(cloud, saga_id) == "COMPLETED"
    await assert_clean(cloud, vm, saga_id, reverted=True)
    cloud.assert_alive()


@pytest.mark.parametrize(
    "fault",
    [
        "qcow2fs.snapshot.after_freeze",  # taking a safety snapshot dies after freezing the active layer
        "qcow2fs.revert.before_switch",  # a volume's revert dies before switching to the new layer
        "qcow2fs.snapshot_delete.after_forget",  # dropping a safety snapshot dies, after the pivot
    ],
)
async def test_a_plugin_that_dies_at_a_step_is_asked_again_and_the_revert_completes(cloud: Cloud, fault: str) -> None:
    vm = await prepare_vm(cloud)
    cloud.restart_agent(faults=(fault,))  # armed once: the operation that passes it dies there, the next is fine
    saga_id = await revert(cloud, vm)
    assert await ends(cloud, saga_id) == "COMPLETED"
    await assert_clean(cloud, vm, saga_id, reverted=True)
    cloud.assert_alive()


async def test_a_plugin_error_that_stays_undoes_everything(cloud: Cloud) -> None:
    vm = await prepare_vm(cloud)
    lost = vm.snapshots[vm.volumes[1]]
    (cloud.pool_dir / "snapshots" / f"{lost}.json").unlink()  # the storage lost one of the snapshots
    saga_id = await revert(cloud, vm)
    assert await ends(cloud, saga_id) == "COMPENSATED"
    await assert_clean(cloud, vm, saga_id, reverted=False)
    cloud.assert_alive()


@pytest.mark.parametrize("after_steps", [3, 9, 15])  # the VM stopped; safety snapshots taken; volumes reverted
async def test_the_agent_killed_mid_revert_and_restarted_finishes_it(cloud: Cloud, after_steps: int) -> None:
    vm = await prepare_vm(cloud)
    saga_id = await revert(cloud, vm)

    async def progressed() -> bool:
        return await steps_done(cloud, saga_id) >= after_steps

    await cloud.wait(progressed, f"{after_steps} steps done")
    cloud.restart_agent(kill=True)
    assert await ends(cloud, saga_id) == "COMPLETED"
    await assert_clean(cloud, vm, saga_id, reverted=True)
    cloud.assert_alive()


async def test_reverting_a_volume_of_the_running_vm_directly_is_refused_and_changes_nothing(cloud: Cloud) -> None:
    vm = await prepare_vm(cloud)
    volume_id = vm.volumes[0]
    reply = await cloud.bus.request(
        Envelope.wrap(RevertSnapshot(snapshot_id=vm.snapshots[volume_id]), producer="e2e"), timeout=15
    )
    assert isinstance(reply.payload, SnapshotRevertFailed)
    assert reply.payload.error.code == "FAILED_PRECONDITION"
    assert "which is running" in reply.payload.error.message
    assert await holds_pattern(vm.paths[volume_id], NEW)
    assert await cloud.value("SELECT state FROM storage.volumes WHERE volume_id = $1", volume_id) == "Ready"
