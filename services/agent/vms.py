"""The agent's VM commands: stop, start and describe a VM through the hypervisor.

Each handler is `handler(command, envelope, uow, agent)`: it names the resources it touches (checked against a
saga's fencing token), does the work through the pool's plugin driver or the hypervisor, and answers
(`answering.Agent.run`). The table is in `handlers`.
"""

from bus.ports import UnitOfWork
from schemas import Envelope, Event, Message
from schemas.vm import (
    DescribeVm,
    StartVm,
    StopVm,
    VmDescribed,
    VmDescribeFailed,
    VmStarted,
    VmStartFailed,
    VmStopFailed,
    VmStopped,
)
from services.agent.answering import Agent, vm_resource


async def stop_vm(command: StopVm, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Stop the VM (a stopped VM is left alone and reported as such)."""

    async def work() -> Event:
        was_running = await agent.hypervisor.stop_vm(
            command.vm_id, force=command.force, grace_seconds=command.grace_seconds
        )
        return VmStopped(vm_id=command.vm_id, host=agent.host, was_running=was_running)

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: VmStopFailed(vm_id=command.vm_id, host=agent.host, error=error),
        resources=[vm_resource(command.vm_id)],
    )


async def start_vm(command: StartVm, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Start the VM (a running VM is left alone and reported as such)."""

    async def work() -> Event:
        was_stopped = await agent.hypervisor.start_vm(command.vm_id)
        return VmStarted(vm_id=command.vm_id, host=agent.host, was_stopped=was_stopped)

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: VmStartFailed(vm_id=command.vm_id, host=agent.host, error=error),
        resources=[vm_resource(command.vm_id)],
    )


async def describe_vm(command: DescribeVm, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> Message | None:
    """A query: the VM's power state and disks, as a saga step's reply or a request's reply."""

    async def work() -> Event:
        described = await agent.hypervisor.describe_vm(command.vm_id)
        return VmDescribed(
            vm_id=command.vm_id, host=agent.host, power_state=described.power_state, disks=described.disks
        )

    # Describing changes nothing, so it is not fenced; outside a saga the answer is the request's reply only.
    return await agent.run(
        uow,
        envelope,
        work,
        lambda error: VmDescribeFailed(vm_id=command.vm_id, host=agent.host, error=error),
        emit_outside_saga=False,
    )
