"""How the agent answers: the event, the failure event, a saga's step reply, and retry for Transient errors."""

import os
from uuid import uuid4

import pytest

from plugins.registry import Registry
from plugins.sdk.faults import InjectedCrash
from schemas import Envelope, Event
from schemas.errors import ErrorInfo, NotFound, Transient
from schemas.sagas import StepFailed
from schemas.vm import StartVm, VmStarted, VmStartFailed
from services.agent.answering import Agent
from services.agent.drivers import PoolDrivers
from services.agent.libvirt_hypervisor import LibvirtHypervisor
from services.agent.operations import StagedUnit
from services.runtime.sealing import KEY_BYTES, SecretSealer

pytestmark = pytest.mark.unit
VM = uuid4()


def agent() -> Agent:
    return Agent(
        host="h1",
        cluster="c1",
        drivers=PoolDrivers(Registry(), SecretSealer(os.urandom(KEY_BYTES))),
        hypervisor=LibvirtHypervisor("test:///"),
    )


def failed(error: ErrorInfo) -> Event:
    return VmStartFailed(vm_id=VM, host="h1", error=error)


async def succeed() -> Event:
    return VmStarted(vm_id=VM, host="h1", was_stopped=True)


def command(*, saga: bool) -> Envelope:
    return Envelope.wrap(StartVm(vm_id=VM, host="h1"), saga_id=uuid4() if saga else None, step=2 if saga else None)


async def test_success_is_the_event_caused_by_the_command() -> None:
    uow, incoming = StagedUnit(None, "agent.h1"), command(saga=False)
    await agent().run(uow, incoming, succeed, failed)
    [answer] = uow.emitted
    assert isinstance(answer.payload, VmStarted)
    assert answer.causation_id == incoming.message_id
    assert answer.producer == "agent@h1"


async def test_a_saga_step_gets_the_event_with_its_saga_id_and_step() -> None:
    uow, incoming = StagedUnit(None, "agent.h1"), command(saga=True)
    await agent().run(uow, incoming, succeed, failed)
    [answer] = uow.emitted
    assert isinstance(answer.payload, VmStarted)
    assert (answer.saga_id, answer.step) == (incoming.saga_id, 2)


@pytest.mark.parametrize("saga", [False, True])
async def test_a_refusal_is_the_failed_event_or_a_step_failure(saga: bool) -> None:
    async def missing() -> Event:
        raise NotFound("no such VM", field="vm_id")

    uow = StagedUnit(None, "agent.h1")
    assert await agent().run(uow, command(saga=saga), missing, failed) is None
    [answer] = uow.emitted
    expected = StepFailed if saga else VmStartFailed
    assert isinstance(answer.payload, expected)
    assert answer.payload.error.code == "NOT_FOUND"


async def test_a_crash_at_a_fault_point_is_answered_as_a_failure() -> None:
    async def crash() -> Event:
        raise InjectedCrash("qcow2fs.revert.before_switch")

    uow = StagedUnit(None, "agent.h1")
    await agent().run(uow, command(saga=False), crash, failed)
    [answer] = uow.emitted
    assert isinstance(answer.payload, VmStartFailed)
    assert "qcow2fs.revert.before_switch" in answer.payload.error.message


async def test_transient_errors_go_back_to_the_bus_and_nothing_is_emitted() -> None:
    async def busy() -> Event:
        raise Transient("hypervisor busy")

    uow = StagedUnit(None, "agent.h1")
    with pytest.raises(Transient):
        await agent().run(uow, command(saga=True), busy, failed)
    assert uow.emitted == []


async def test_an_unexpected_error_is_answered_without_its_text() -> None:
    async def broken() -> Event:
        raise RuntimeError("password=hunter2 in a driver's message")

    uow = StagedUnit(None, "agent.h1")
    await agent().run(uow, command(saga=False), broken, failed)
    [answer] = uow.emitted
    assert isinstance(answer.payload, VmStartFailed)
    assert "RuntimeError" in answer.payload.error.message
    assert "hunter2" not in answer.payload.model_dump_json()
