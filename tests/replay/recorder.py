"""A small recorded cloud for the replay tool's tests: the real orchestrator (the revert-VM saga) on the in-memory
bus and a real PostgreSQL, against the fake cloud of `tests.revert_vm_fixtures` (the agent, snapshot and storage
services in one participant that can fail a step on demand). What it records is a real journal: the bus's and the
saga store's, written by the same code as in production.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import UUID, uuid4

from bus.codec import decode, encode
from bus.facade import Bus
from bus.memory import MemoryTransport
from bus.ports import Binding, Delivery
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings, create_pool
from bus.postgres.pool import Pool
from sagas.postgres_store import PostgresSagaStore
from sagas.work import saga_id_for
from schemas import Envelope, Message
from schemas.snapshot import RevertVmToSnapshot, VmReverted, VmRevertFailed, VolumeSnapshotPair
from schemas.vm import PowerState
from services.orchestrator.bootstrap import DAEMON, build_orchestrator
from services.runtime.runner import migrate_daemons
from tests.bus_fixtures import bus_settings
from tests.helpers import assert_eventually
from tests.revert_vm_fixtures import HOST, FakeCloud, FakeCloudConsumer


@dataclass
class Reverted:
    """One revert that was run: its saga, its VM and volumes, and how it ended."""

    saga_id: UUID
    correlation_id: UUID
    vm_id: UUID
    volumes: list[UUID]
    outcome: Message


@dataclass
class RecordedCloud:
    """The orchestrator and a fake cloud on one database; `revert` runs a revert to its end."""

    pool: Pool
    transport: MemoryTransport
    cloud: FakeCloud
    outcomes: dict[UUID, Message]

    async def revert(self, *, fail_on: str = "") -> Reverted:
        """Revert a running VM with three volumes; `fail_on` ("revert v2") fails that step once (it compensates)."""
        self.cloud.fail_on = fail_on
        self.cloud.power = PowerState.RUNNING
        snapshots = {volume_id: uuid4() for volume_id in self.cloud.data}
        for index, (volume_id, snapshot_id) in enumerate(snapshots.items()):
            self.cloud.snapshots[snapshot_id] = (volume_id, f"old{index + 1}")
        vm_id = uuid4()
        command = RevertVmToSnapshot(
            vm_id=vm_id,
            vm_snapshot_id=uuid4(),
            host=HOST,
            snapshots=tuple(VolumeSnapshotPair(volume_id=v, snapshot_id=s) for v, s in snapshots.items()),
        )
        envelope = Envelope.wrap(command, producer="cli@operator")
        await Bus(self.transport).publish(envelope)
        saga_id = saga_id_for(envelope.message_id)

        async def announced() -> bool:
            return saga_id in self.outcomes

        await assert_eventually(announced, timeout=30, what=f"the outcome of saga {saga_id}")
        return Reverted(saga_id, envelope.correlation_id, vm_id, sorted(self.cloud.data), self.outcomes[saga_id])


@asynccontextmanager
async def recorded_cloud(database_url: str, namespace: str | None = None) -> AsyncIterator[RecordedCloud]:
    """Run the orchestrator and the fake cloud on `database_url` (migrated here) until the block ends."""
    namespace = namespace or f"t{uuid.uuid4().hex[:10]}"
    pool = await create_pool(database_url, min_size=2, max_size=8)
    await migrate_daemons(pool, [DAEMON])
    transport = MemoryTransport(bus_settings(namespace))
    await transport.start()
    relay = OutboxRelay(pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=0.05))
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

    watch = await transport.watch(
        [Binding("events", model.message_type) for model in (VmReverted, VmRevertFailed)], on_outcome
    )
    await participant.start()
    await service.start()
    try:
        yield RecordedCloud(pool, transport, cloud, outcomes)
    finally:
        await service.stop()
        await participant.stop()
        await watch.cancel()
        await relay.stop()
        await transport.close()
        transport.delete_namespace()
        await pool.close()
