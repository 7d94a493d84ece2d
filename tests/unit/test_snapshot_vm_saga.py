"""The VM snapshot saga in memory against the fake cloud: every volume snapshotted with the VM stopped meanwhile,
and nothing left when one snapshot fails."""

from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID, uuid4

import pytest

from bus.facade import Bus
from bus.memory import MemoryTransport
from bus.memory_uow import MemoryUnitOfWorkFactory
from sagas import SagaRegistry, SagaStatus
from sagas.coordinator import Coordinator
from sagas.definition import SagaDefinition
from sagas.definitions import snapshot_vm
from sagas.memory_store import MemorySagaStore
from sagas.records import SagaInstance
from sagas.work import saga_id_for
from schemas import Envelope
from schemas.snapshot import CreateVmSnapshot
from schemas.vm import PowerState
from tests.bus_fixtures import bus_settings
from tests.helpers import assert_eventually
from tests.revert_vm_fixtures import HOST, FakeCloud, FakeCloudConsumer

pytestmark = pytest.mark.unit


class World:
    def __init__(self, bus: Bus, store: MemorySagaStore, cloud: FakeCloud) -> None:
        self.bus = bus
        self.store = store
        self.cloud = cloud
        self.vm_id = uuid4()
        self.vm_snapshot_id = uuid4()

    async def snapshot(self, *, host: str | None = HOST) -> SagaInstance:
        command = CreateVmSnapshot(
            vm_snapshot_id=self.vm_snapshot_id,
            vm_id=self.vm_id,
            name="nightly",
            volume_ids=tuple(self.cloud.data),
            host=host,
        )
        envelope = Envelope.wrap(command, producer="test")
        await self.bus.publish(envelope)
        saga_id = saga_id_for(envelope.message_id)

        async def ended() -> SagaInstance | None:
            async with self.store.session() as session:
                found = await session.get_instance(saga_id)
            return found if found is not None and found.status.ended else None

        condition: Callable[[], Awaitable[SagaInstance | None] | SagaInstance | None] = ended
        instance = await assert_eventually(condition, timeout=10.0, what="the saga ends")
        assert isinstance(instance, SagaInstance)
        return instance

    def expected_ids(self) -> set[UUID]:
        return {snapshot_vm.volume_snapshot_id(self.vm_snapshot_id, volume_id) for volume_id in self.cloud.data}


@pytest.fixture
async def world(namespace: str) -> AsyncIterator[World]:
    transport = MemoryTransport(bus_settings(namespace))
    await transport.start()
    bus = Bus(transport)
    units = MemoryUnitOfWorkFactory(bus)
    store = MemorySagaStore()
    sagas = SagaRegistry()
    sagas.register(SagaDefinition(snapshot_vm.SAGA_NAME, 1, CreateVmSnapshot, snapshot_vm.snapshot_vm))
    cloud = FakeCloud(power=PowerState.RUNNING, data=dict.fromkeys(sorted(uuid4() for _ in range(3)), "data"))
    coordinator = Coordinator(
        transport, units, store, sagas=sagas, reply_types=snapshot_vm.REPLY_TYPES, timer_poll=0.01
    )
    participant = FakeCloudConsumer(transport, units, name="fake-cloud", handlers=cloud.handlers())
    await coordinator.start()
    await participant.start()
    yield World(bus, store, cloud)
    await coordinator.stop()
    await participant.stop()
    await transport.close()
    transport.delete_namespace()


async def test_every_volume_is_snapshotted_with_the_vm_stopped_meanwhile(world: World) -> None:
    instance = await world.snapshot()
    assert instance.status is SagaStatus.COMPLETED
    assert set(world.cloud.snapshots) == world.expected_ids()
    assert world.cloud.effects[0] == "stop"
    assert world.cloud.effects[-1] == "start"
    assert world.cloud.power is PowerState.RUNNING
    assert instance.result is not None
    pairs = instance.result.payload["snapshots"]
    assert {UUID(pair["snapshot_id"]) for pair in pairs} == world.expected_ids()


async def test_without_a_host_the_volumes_are_snapshotted_as_they_are(world: World) -> None:
    instance = await world.snapshot(host=None)
    assert instance.status is SagaStatus.COMPLETED
    assert "stop" not in world.cloud.effects
    assert set(world.cloud.snapshots) == world.expected_ids()


async def test_a_failed_snapshot_leaves_no_snapshot_and_the_vm_running(world: World) -> None:
    world.cloud.fail_on = "snapshot v2"
    instance = await world.snapshot()
    assert instance.status is SagaStatus.COMPENSATED
    assert world.cloud.snapshots == {}
    assert world.cloud.power is PowerState.RUNNING
