"""The orchestrator on the real RabbitMQ and PostgreSQL runs the revert-VM and VM snapshot sagas against a fake
cloud, and announces their outcomes (`vm.reverted`, `vm.revert.failed`, `vm.snapshot.created`, ...).

The saga's steps run three at a time (one per volume), so their replies arrive together: each must see the
others' outcomes (a lost one leaves the saga waiting forever).
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID, uuid4

import pytest

from bus.codec import decode, encode
from bus.facade import Bus
from bus.ports import Binding, Delivery
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings, create_pool
from bus.postgres.pool import Pool
from bus.rabbit import RabbitTransport
from sagas.postgres_store import PostgresSagaStore
from sagas.work import saga_id_for
from schemas import Envelope, Message
from schemas.snapshot import (
    CreateVmSnapshot,
    RevertVmToSnapshot,
    VmReverted,
    VmRevertFailed,
    VmSnapshotCreated,
    VmSnapshotCreateFailed,
    VolumeSnapshotPair,
)
from schemas.vm import PowerState
from services.orchestrator.bootstrap import DAEMON, build_orchestrator
from services.runtime.runner import migrate_daemons
from tests.bus_fixtures import bus_settings
from tests.integration.snapshot_service_support import eventually
from tests.revert_vm_fixtures import HOST, FakeCloud, FakeCloudConsumer

pytestmark = pytest.mark.integration


@dataclass
class Stack:
    pool: Pool
    transport: RabbitTransport
    cloud: FakeCloud
    outcomes: dict[UUID, Message]

    async def revert(self) -> UUID:
        snapshots = {volume_id: uuid4() for volume_id in self.cloud.data}
        for index, (volume_id, snapshot_id) in enumerate(snapshots.items()):
            self.cloud.snapshots[snapshot_id] = (volume_id, f"old{index + 1}")
        command = RevertVmToSnapshot(
            vm_id=uuid4(),
            vm_snapshot_id=uuid4(),
            host=HOST,
            snapshots=tuple(VolumeSnapshotPair(volume_id=v, snapshot_id=s) for v, s in snapshots.items()),
        )
        envelope = Envelope.wrap(command, producer="test")
        await Bus(self.transport).publish(envelope)
        return saga_id_for(envelope.message_id)

    async def outcome(self, saga_id: UUID) -> Message:
        async def announced() -> bool:
            return saga_id in self.outcomes

        await eventually(announced, what=f"the outcome of saga {saga_id}", timeout=20)
        return self.outcomes[saga_id]


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Stack]:
    pool = await create_pool(database_url, min_size=2, max_size=8)
    await migrate_daemons(pool, [DAEMON])
    transport = RabbitTransport(bus_settings(namespace, amqp_url), purpose="orchestrator-test")
    await transport.start()
    relay = OutboxRelay(pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=0.1))
    await relay.start()
    units = PostgresUnitOfWorkFactory(pool, encode=encode)
    service = build_orchestrator(transport, units, PostgresSagaStore(pool), timer_poll=0.05)
    volumes = sorted(uuid4() for _ in range(3))
    cloud = FakeCloud(power=PowerState.RUNNING, data={v: f"new{i + 1}" for i, v in enumerate(volumes)})
    participant = FakeCloudConsumer(transport, units, name="fake-cloud", handlers=cloud.handlers())
    outcomes: dict[UUID, Message] = {}

    async def on_outcome(delivery: Delivery) -> None:
        envelope = decode(delivery.message)
        if envelope.saga_id is not None:
            outcomes[envelope.saga_id] = envelope.payload

    announced = (VmReverted, VmRevertFailed, VmSnapshotCreated, VmSnapshotCreateFailed)
    watch = await transport.watch([Binding("events", model.message_type) for model in announced], on_outcome)
    await participant.start()
    await service.start()
    yield Stack(pool, transport, cloud, outcomes)
    await service.stop()
    await participant.stop()
    await watch.cancel()
    await relay.stop()
    await transport.close()
    await transport.delete_namespace(
        [f"{namespace}.orchestrator", f"{namespace}.orchestrator.outcomes", f"{namespace}.fake-cloud"]
    )
    await pool.close()


async def test_reverts_whose_parallel_replies_arrive_together_all_complete(stack: Stack) -> None:
    for _ in range(3):
        saga_id = await stack.revert()
        outcome = await stack.outcome(saga_id)
        assert isinstance(outcome, VmReverted), outcome
        assert outcome.restarted is True
        assert stack.cloud.power is PowerState.RUNNING
        assert sorted(stack.cloud.data.values()) == ["old1", "old2", "old3"]
        assert await stack.pool.fetchval("SELECT count(*) FROM sagas.locks WHERE holder IS NOT NULL") == 0


async def test_a_failed_revert_is_announced_with_the_reason_and_changes_nothing(stack: Stack) -> None:
    stack.cloud.fail_on = "revert v2"
    saga_id = await stack.revert()
    outcome = await stack.outcome(saga_id)
    assert isinstance(outcome, VmRevertFailed)
    assert "planned failure at revert v2" in outcome.error.message
    assert sorted(stack.cloud.data.values()) == ["new1", "new2", "new3"]
    assert stack.cloud.power is PowerState.RUNNING
    assert (
        await asyncio.wait_for(stack.pool.fetchval("SELECT count(*) FROM sagas.locks WHERE holder IS NOT NULL"), 5) == 0
    )


async def test_a_vm_snapshot_is_taken_and_announced_with_its_volume_snapshots(stack: Stack) -> None:
    command = CreateVmSnapshot(
        vm_snapshot_id=uuid4(), vm_id=uuid4(), name="nightly", volume_ids=tuple(stack.cloud.data), host=HOST
    )
    envelope = Envelope.wrap(command, producer="test")
    await Bus(stack.transport).publish(envelope)
    outcome = await stack.outcome(saga_id_for(envelope.message_id))
    assert isinstance(outcome, VmSnapshotCreated)
    assert {pair.snapshot_id for pair in outcome.snapshots} == set(stack.cloud.snapshots)
    assert stack.cloud.power is PowerState.RUNNING


async def test_a_failed_vm_snapshot_is_announced_and_leaves_no_snapshot(stack: Stack) -> None:
    stack.cloud.fail_on = "snapshot v3"
    command = CreateVmSnapshot(
        vm_snapshot_id=uuid4(), vm_id=uuid4(), name="nightly", volume_ids=tuple(stack.cloud.data), host=HOST
    )
    envelope = Envelope.wrap(command, producer="test")
    await Bus(stack.transport).publish(envelope)
    outcome = await stack.outcome(saga_id_for(envelope.message_id))
    assert isinstance(outcome, VmSnapshotCreateFailed)
    assert outcome.error.code == "ABORTED"
    assert stack.cloud.snapshots == {}
    assert stack.cloud.power is PowerState.RUNNING
