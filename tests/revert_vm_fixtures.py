"""A fake cloud for the revert-VM saga: the agent, the snapshot and the storage services in one participant that
keeps the VM's power state, the volumes' data and the snapshots in memory, and fails once at a step on demand."""

from dataclasses import dataclass, field
from uuid import UUID

from bus.ports import Binding, Handler, UnitOfWork
from bus.runtime import Consumer
from sagas.participant import reply_failure, reply_success
from schemas import Envelope, Message
from schemas.agent import AgentCommand, routing_word
from schemas.errors import FailedPrecondition
from schemas.snapshot import CreateSnapshot, DeleteSnapshot, RevertSnapshot, SnapshotCreated, SnapshotKind
from schemas.storage import BeginVolumeOperation, EndVolumeOperation
from schemas.vm import DescribeVm, PowerState, StartVm, StopVm, VmDescribed, VmStarted, VmStopped

PRODUCER = "fake-cloud@test"
HOST = "host-1"


@dataclass
class FakeCloud:
    """The VM, its volumes' data and the snapshots, as the participants of the saga would change them."""

    power: PowerState
    data: dict[UUID, str]
    snapshots: dict[UUID, tuple[UUID, str]] = field(default_factory=dict)
    held: set[UUID] = field(default_factory=set)
    effects: list[str] = field(default_factory=list)
    fail_on: str = ""

    def handlers(self) -> dict[type[Message], Handler]:
        return {
            DescribeVm: self.describe,
            StopVm: self.stop,
            StartVm: self.start,
            CreateSnapshot: self.snapshot,
            DeleteSnapshot: self.delete,
            BeginVolumeOperation: self.begin,
            EndVolumeOperation: self.end,
            RevertSnapshot: self.revert,
        }

    def _refused(self, what: str, envelope: Envelope, uow: UnitOfWork) -> bool:
        if self.fail_on and what == self.fail_on:
            self.fail_on = ""  # once: the undo of the same kind of step must work
            self.effects.append(f"FAILED {what}")
            reply_failure(uow, envelope, FailedPrecondition(f"planned failure at {what}"), producer=PRODUCER)
            return True
        return False

    async def describe(self, command: DescribeVm, envelope: Envelope, uow: UnitOfWork) -> None:
        if not self._refused("describe", envelope, uow):
            described = VmDescribed(vm_id=command.vm_id, host=HOST, power_state=self.power)
            reply_success(uow, envelope, described, producer=PRODUCER)

    async def stop(self, command: StopVm, envelope: Envelope, uow: UnitOfWork) -> None:
        if not self._refused("stop", envelope, uow):
            was_running, self.power = self.power is PowerState.RUNNING, PowerState.STOPPED
            self.effects.append("stop")
            reply_success(
                uow, envelope, VmStopped(vm_id=command.vm_id, host=HOST, was_running=was_running), producer=PRODUCER
            )

    async def start(self, command: StartVm, envelope: Envelope, uow: UnitOfWork) -> None:
        if not self._refused("start", envelope, uow):
            was_stopped, self.power = self.power is PowerState.STOPPED, PowerState.RUNNING
            self.effects.append("start")
            reply_success(
                uow, envelope, VmStarted(vm_id=command.vm_id, host=HOST, was_stopped=was_stopped), producer=PRODUCER
            )

    async def snapshot(self, command: CreateSnapshot, envelope: Envelope, uow: UnitOfWork) -> None:
        if self._refused(f"snapshot {self.name(command.volume_id)}", envelope, uow):
            return
        self.snapshots[command.snapshot_id] = (command.volume_id, self.data[command.volume_id])
        self.effects.append(f"snapshot {self.name(command.volume_id)}")
        created = SnapshotCreated(
            snapshot_id=command.snapshot_id,
            volume_id=command.volume_id,
            kind=SnapshotKind.FULL,
            size_bytes=1,
            physical_size_bytes=1,
        )
        reply_success(uow, envelope, created, producer=PRODUCER)

    async def delete(self, command: DeleteSnapshot, envelope: Envelope, uow: UnitOfWork) -> None:
        if not self._refused("delete", envelope, uow):
            volume_id, _ = self.snapshots.pop(command.snapshot_id)
            self.effects.append(f"delete safety {self.name(volume_id)}")
            reply_success(uow, envelope, producer=PRODUCER)

    async def begin(self, command: BeginVolumeOperation, envelope: Envelope, uow: UnitOfWork) -> None:
        if not self._refused(f"begin {self.name(command.volume_id)}", envelope, uow):
            self.held.add(command.volume_id)
            self.effects.append(f"begin {self.name(command.volume_id)}")
            reply_success(uow, envelope, producer=PRODUCER)

    async def end(self, command: EndVolumeOperation, envelope: Envelope, uow: UnitOfWork) -> None:
        if not self._refused(f"end {self.name(command.volume_id)}", envelope, uow):
            self.held.discard(command.volume_id)
            self.effects.append(f"end {self.name(command.volume_id)}")
            reply_success(uow, envelope, producer=PRODUCER)

    async def revert(self, command: RevertSnapshot, envelope: Envelope, uow: UnitOfWork) -> None:
        volume_id, content = self.snapshots[command.snapshot_id]
        if self._refused(f"revert {self.name(volume_id)}", envelope, uow):
            return
        assert self.power is PowerState.STOPPED, "a volume was reverted under a running VM"
        self.data[volume_id] = content
        self.effects.append(f"revert {self.name(volume_id)} to {content}")
        reply_success(uow, envelope, producer=PRODUCER)

    def name(self, volume_id: UUID) -> str:
        return f"v{sorted(self.data).index(volume_id) + 1}"


class FakeCloudConsumer(Consumer):
    """Binds the agent's commands the way an agent of HOST does (by host), the others by their type."""

    def bindings(self) -> list[Binding]:
        return [
            Binding("commands", f"agent.host.{routing_word(HOST)}.{model.message_type}")
            if issubclass(model, AgentCommand)
            else Binding("commands", model.message_type)
            for model in self.handlers
        ]
