"""Deadlines: a late call ends as DeadlineExceeded, a call inside one sees what is left, and the agent gives each
command's work its deadline with room left for the consumer runtime's."""

import asyncio
import os
from uuid import uuid4

import pytest

from plugins.registry import Registry
from plugins.sdk.deadlines import time_left, within
from schemas import Envelope
from schemas.agent import CreateVolumeOnPool
from schemas.errors import DeadlineExceeded
from services.agent.answering import RECORDING_MARGIN_SECONDS, Agent
from services.agent.drivers import PoolDrivers
from services.agent.libvirt_hypervisor import LibvirtHypervisor
from services.runtime.sealing import KEY_BYTES, SecretSealer

pytestmark = pytest.mark.unit


async def test_a_late_call_is_cancelled_and_named() -> None:
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    with pytest.raises(DeadlineExceeded, match=r"the hung call did not finish within its deadline of 0\.05 s"):
        await within(0.05, hangs(), "the hung call")
    assert cancelled.is_set()


async def test_a_call_inside_a_deadline_sees_what_is_left_and_outside_its_default() -> None:
    assert time_left(7.0) == 7.0

    async def inner() -> float:
        return time_left(3600.0)

    left = await within(30.0, inner(), "outer")
    assert 0 < left <= 30.0
    nested = await within(30.0, within(5.0, inner(), "inner"), "outer")
    assert nested <= 5.0


def agent(deadline_seconds: float) -> Agent:
    drivers = PoolDrivers(Registry(), SecretSealer(os.urandom(KEY_BYTES)))
    hypervisor = LibvirtHypervisor("test:///default")
    return Agent(host="h1", cluster="c1", drivers=drivers, hypervisor=hypervisor, deadline_seconds=deadline_seconds)


@pytest.mark.parametrize(
    ("asked", "work"),
    [
        (None, 600.0),  # the agent's default
        (1.0, 1.0),  # less than the default: as asked
        (7200.0, 7200.0 - RECORDING_MARGIN_SECONDS),  # more: the runtime's deadline is the asked one, kept after
    ],
)
def test_the_work_gets_its_deadline_and_the_runtime_ends_after_it(asked: float | None, work: float) -> None:
    command = CreateVolumeOnPool(pool_id=uuid4(), volume_id=uuid4(), size_bytes=1, host="h1", deadline_seconds=asked)
    the_agent = agent(600.0)
    assert the_agent.work_deadline(Envelope.wrap(command)) == work
    # What the consumer runtime gives the handler (the larger of the handler's ask and the message's) ends later.
    assert max(the_agent.handler_deadline_seconds, asked or 0.0) > work
