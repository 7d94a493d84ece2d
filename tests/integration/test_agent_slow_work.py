"""The agent under slow and hung plugin calls: no transaction is held across the work, and every call has a deadline.

The hung calls come from a fake qemu-img: a configured binary that records its pid and sleeps, as a convert on a
hung NFS mount would.
"""

import os
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from schemas import Envelope
from schemas.agent import (
    AgentRoute,
    AttachPoolToHost,
    CreateVolumeOnPool,
    PoolAttachedToHost,
    VolumeCreatedOnPool,
    VolumeCreateOnPoolFailed,
)
from schemas.sagas import StepFailed
from tests.helpers import assert_eventually
from tests.integration.storage_stack import Stack, fail_without_libvirt, pool_directory

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
HUNG = 20


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Stack]:
    fail_without_libvirt()
    opened = await Stack.open(database_url, amqp_url, namespace)
    await opened.start_agent("kvm1.lab", "c1")
    yield opened
    await opened.close()


def hanging_qemu_img(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A qemu-img that hangs: each run writes its pid into `started/` and waits until the file `release` exists,
    then fails. Returns (binary, started, release)."""
    started, release = tmp_path / "started", tmp_path / "release"
    started.mkdir()
    binary = tmp_path / "qemu-img-hangs"
    binary.write_text(
        f'#!/bin/sh\necho $$ > "{started}/$$"\nwhile [ ! -e "{release}" ]; do sleep 1; done\n'
        'echo "qemu-img: the hung call was released" >&2\nexit 1\n'
    )
    binary.chmod(0o755)
    return binary, started, release


def pids(started: Path) -> list[int]:
    return [int(marker.name) for marker in started.iterdir()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def attach(stack: Stack, root: Path, qemu_img: str = "qemu-img") -> UUID:
    pool_id = uuid4()
    config = {"path": str(root), "qemu_img": qemu_img}
    attached = await stack.answer(
        await stack.send(AttachPoolToHost(pool_id=pool_id, plugin="qcow2fs", config=config, host="kvm1.lab"))
    )
    assert isinstance(attached.payload, PoolAttachedToHost), attached.payload
    return pool_id


async def test_twenty_hung_operations_hold_no_connection_and_the_others_still_report(
    stack: Stack, tmp_path: Path
) -> None:
    binary, started, release = hanging_qemu_img(tmp_path)
    slow_pool = await attach(stack, pool_directory(tmp_path), str(binary))
    fast_pool = await attach(stack, pool_directory(tmp_path))
    try:
        # Half on the host's queue, half on the cluster's: the agent takes them all at once (prefetch 16 each).
        for n in range(HUNG):
            route: AgentRoute = {"host": "kvm1.lab"} if n % 2 else {"cluster_id": "c1"}
            await stack.send(CreateVolumeOnPool(pool_id=slow_pool, volume_id=uuid4(), size_bytes=MIB, **route))
        # Every hung call got as far as its plugin: none waits for a database connection.
        await assert_eventually(lambda: len(pids(started)) == HUNG, timeout=30, what=f"{HUNG} hung qemu-img runs")
        async with stack.pool.acquire() as connection:
            running = await connection.fetchval("SELECT count(*) FROM agent.operations WHERE state = 'running'")
        assert running == HUNG, "each hung command's intent was committed before its plugin call"

        fast = await stack.send(
            CreateVolumeOnPool(pool_id=fast_pool, volume_id=uuid4(), size_bytes=MIB, host="kvm1.lab")
        )
        created = await stack.answer(fast, timeout=30)
        assert isinstance(created.payload, VolumeCreatedOnPool)
        assert all(alive(pid) for pid in pids(started)), "the others were still hung when it reported"
    finally:
        release.touch()  # the hung runs end, failing; so do their commands
    await assert_eventually(
        lambda: len(stack.of_type(VolumeCreateOnPoolFailed, lambda failed: failed.pool_id == slow_pool)) == HUNG,
        timeout=30,
        what="every hung command answered",
    )


async def test_a_hung_plugin_call_ends_at_its_deadline_killed_and_the_step_fails(stack: Stack, tmp_path: Path) -> None:
    binary, started, _ = hanging_qemu_img(tmp_path)
    pool_id = await attach(stack, pool_directory(tmp_path), str(binary))
    volume_id = uuid4()
    step = await stack.send(
        CreateVolumeOnPool(pool_id=pool_id, volume_id=volume_id, size_bytes=MIB, host="kvm1.lab", deadline_seconds=1),
        saga_id=uuid4(),
        step=1,
    )
    reply = await stack.reply(step)
    assert isinstance(reply.payload, StepFailed)
    assert reply.payload.error.code == "DEADLINE_EXCEEDED"
    [pid] = pids(started)
    assert not alive(pid), "the hung qemu-img was killed and reaped, not left running"
    async with stack.pool.acquire() as connection:
        state = await connection.fetchval("SELECT state FROM agent.operations WHERE command_id = $1", step.message_id)
    assert state == "failed"


async def test_a_command_already_answered_is_acked_as_a_duplicate_without_running(stack: Stack, tmp_path: Path) -> None:
    outcomes: list[tuple[str, str]] = []

    class Outcomes:
        def observe(self, consumer: str, message_type: str, outcome: str, seconds: float) -> None:
            outcomes.append((message_type, outcome))

    observer = Outcomes()
    stack.transport.handling.add(observer)
    try:
        pool_id = await attach(stack, pool_directory(tmp_path))
        command = Envelope.wrap(CreateVolumeOnPool(pool_id=pool_id, volume_id=uuid4(), size_bytes=MIB, host="kvm1.lab"))
        await stack.bus.publish(command)
        await stack.answer(command, VolumeCreatedOnPool)
        await stack.bus.publish(command)  # delivered again after it was answered
        await assert_eventually(lambda: ("agent.volume.create", "duplicate") in outcomes, what="the duplicate acked")
    finally:
        stack.transport.handling.remove(observer)
    assert len([event for event in stack.events if event.causation_id == command.message_id]) == 1
    async with stack.pool.acquire() as connection:
        row = await connection.fetchrow(
            "SELECT attempts, state FROM agent.operations WHERE command_id = $1", command.message_id
        )
    assert row is not None
    assert (row["attempts"], row["state"]) == (1, "succeeded")
