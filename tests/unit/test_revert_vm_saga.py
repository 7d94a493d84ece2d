"""The revert-VM saga in memory: a fake cloud (agent, snapshot and storage services in one participant) that fails
on demand at each step, to show what the saga leaves behind and in which order it undoes its work."""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID, uuid4

import pytest

import sagas.definitions.revert_vm as revert_vm
from bus.facade import Bus
from bus.memory import MemoryTransport
from bus.memory_uow import MemoryUnitOfWorkFactory
from sagas import SagaRegistry, SagaStatus
from sagas.coordinator import Coordinator
from sagas.definition import SagaDefinition
from sagas.memory_store import MemorySagaStore
from sagas.records import SagaInstance
from sagas.work import saga_id_for
from schemas import Envelope
from schemas.snapshot import (
    RevertVmToSnapshot,
    VolumeSnapshotPair,
)
from schemas.vm import PowerState
from tests.bus_fixtures import bus_settings
from tests.helpers import assert_eventually
from tests.revert_vm_fixtures import HOST, FakeCloud, FakeCloudConsumer

pytestmark = pytest.mark.unit


@dataclass
class World:
    bus: Bus
    store: MemorySagaStore
    cloud: FakeCloud
    vm_id: UUID
    targets: dict[UUID, UUID]

    async def revert(self) -> UUID:
        command = RevertVmToSnapshot(
            vm_id=self.vm_id,
            vm_snapshot_id=uuid4(),
            host=HOST,
            snapshots=tuple(VolumeSnapshotPair(volume_id=v, snapshot_id=s) for v, s in self.targets.items()),
        )
        envelope = Envelope.wrap(command, producer="test")
        await self.bus.publish(envelope)
        return saga_id_for(envelope.message_id)

    async def ends(self, saga_id: UUID) -> SagaInstance:
        async def ended() -> SagaInstance | None:
            async with self.store.session() as session:
                found = await session.get_instance(saga_id)
            return found if found is not None and (found.status.ended or found.status is SagaStatus.STUCK) else None

        condition: Callable[[], Awaitable[SagaInstance | None] | SagaInstance | None] = ended
        instance = await assert_eventually(condition, timeout=10.0, what=f"saga {saga_id} ends")
        assert isinstance(instance, SagaInstance)
        return instance

    async def locks_left(self) -> int:
        async with self.store.session() as session:
            return len(await session.list_locks())


def revert_sagas() -> SagaRegistry:
    sagas = SagaRegistry()
    sagas.register(SagaDefinition(revert_vm.SAGA_NAME, 1, RevertVmToSnapshot, revert_vm.revert_vm_to_snapshot))
    return sagas


async def open_world(namespace: str, power: PowerState) -> AsyncIterator[World]:
    transport = MemoryTransport(bus_settings(namespace))
    await transport.start()
    bus = Bus(transport)
    units = MemoryUnitOfWorkFactory(bus)
    store = MemorySagaStore()
    volumes = sorted(uuid4() for _ in range(3))
    cloud = FakeCloud(power=power, data={v: f"new{i + 1}" for i, v in enumerate(volumes)})
    targets = {}
    for index, volume_id in enumerate(volumes):
        targets[volume_id] = uuid4()
        cloud.snapshots[targets[volume_id]] = (volume_id, f"old{index + 1}")
    coordinator = Coordinator(
        transport, units, store, sagas=revert_sagas(), reply_types=revert_vm.REPLY_TYPES, timer_poll=0.01
    )
    participant = FakeCloudConsumer(transport, units, name="fake-cloud", handlers=cloud.handlers())
    await coordinator.start()
    await participant.start()
    yield World(bus, store, cloud, uuid4(), targets)
    await coordinator.stop()
    await participant.stop()
    await transport.close()
    transport.delete_namespace()


@pytest.fixture
async def running(namespace: str) -> AsyncIterator[World]:
    async for world in open_world(namespace, PowerState.RUNNING):
        yield world


@pytest.fixture
async def stopped(namespace: str) -> AsyncIterator[World]:
    async for world in open_world(namespace, PowerState.STOPPED):
        yield world


def safety_left(world: World) -> int:
    return len(world.cloud.snapshots) - len(world.targets)


async def test_a_running_vm_is_reverted_and_running_again_with_no_safety_snapshot_left(running: World) -> None:
    instance = await running.ends(await running.revert())
    assert instance.status is SagaStatus.COMPLETED
    cloud = running.cloud
    assert sorted(cloud.data.values()) == ["old1", "old2", "old3"]
    assert cloud.power is PowerState.RUNNING
    assert safety_left(running) == 0
    assert not cloud.held
    assert await running.locks_left() == 0
    assert cloud.effects[0] == "stop"
    assert cloud.effects.index("start") > max(i for i, e in enumerate(cloud.effects) if e.startswith("revert"))
    assert instance.result is not None
    assert instance.result.payload["restarted"] is True


async def test_a_stopped_vm_is_reverted_and_left_stopped(stopped: World) -> None:
    instance = await stopped.ends(await stopped.revert())
    assert instance.status is SagaStatus.COMPLETED
    assert sorted(stopped.cloud.data.values()) == ["old1", "old2", "old3"]
    assert stopped.cloud.power is PowerState.STOPPED
    assert "stop" not in stopped.cloud.effects
    assert "start" not in stopped.cloud.effects
    assert safety_left(stopped) == 0


@pytest.mark.parametrize(
    "step", ["describe", "stop", "snapshot v1", "snapshot v3", "begin v2", "revert v1", "revert v3", "start"]
)
async def test_a_failure_at_any_step_before_the_start_leaves_everything_as_it_was(running: World, step: str) -> None:
    running.cloud.fail_on = step
    instance = await running.ends(await running.revert())
    assert instance.status is SagaStatus.COMPENSATED, instance.error
    cloud = running.cloud
    assert f"FAILED {step}" in cloud.effects
    assert sorted(cloud.data.values()) == ["new1", "new2", "new3"]
    assert cloud.power is PowerState.RUNNING
    assert safety_left(running) == 0
    assert not cloud.held
    assert await running.locks_left() == 0


async def test_compensation_undoes_in_reverse_order(running: World) -> None:
    running.cloud.fail_on = "start"
    await running.ends(await running.revert())
    effects = running.cloud.effects
    failed = effects.index("FAILED start")
    undo = effects[failed + 1 :]
    kinds = [effect.split(" ")[0] for effect in undo]
    # Volumes back from their safety snapshots, then released, then the safety snapshots dropped, then the VM.
    assert kinds == ["revert"] * 3 + ["end"] * 3 + ["delete"] * 3 + ["start"]
    assert all(effect.endswith(f"new{effect[8]}") for effect in undo[:3])
