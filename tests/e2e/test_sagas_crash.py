"""The coordinator killed with SIGKILL at every step boundary, on the real RabbitMQ and PostgreSQL.

The coordinator runs as a separate process (tests/e2e/sagas_worker.py) that kills itself, at its K-th handled
message, just before the commit and then (next run) just after it. It is restarted each time, until both sagas
end: one completes, one compensates. Every step's effect and every compensation must have happened exactly once
(the participant records effects in its own table, guarded by its inbox).
"""

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest

from plugins.sdk.processes import kill_and_reap
from sagas.coordinator import Coordinator
from sagas.records import SagaStatus
from sagas.work import saga_id_for
from schemas import Envelope
from tests.e2e.sagas_worker import crash_settings
from tests.helpers import assert_eventually
from tests.sagas_fixtures import PostgresParticipant, RunPlan, saga_test_messages, test_sagas
from tests.sagas_stack import SagaNode, prepare_database

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def node(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[SagaNode]:
    await prepare_database(database_url)
    opened = await SagaNode.open(database_url, amqp_url, namespace, settings=crash_settings(namespace, amqp_url))
    yield opened
    await opened.close(delete_namespace=True)


async def start_worker(database_url: str, amqp_url: str, namespace: str, *crash: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.sagas_worker",
        "--database-url",
        database_url,
        "--amqp-url",
        amqp_url,
        "--namespace",
        namespace,
        *crash,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def ended(node: SagaNode, saga_ids: list[UUID]) -> dict[UUID, SagaStatus] | None:
    statuses = {}
    for saga_id in saga_ids:
        instance = await node.status(saga_id)
        if instance is None or not instance.status.ended:
            return None
        statuses[saga_id] = instance.status
    return statuses


async def test_sigkill_at_every_step_boundary_loses_nothing_and_repeats_nothing(
    node: SagaNode, database_url: str, amqp_url: str, namespace: str
) -> None:
    participant = PostgresParticipant(node.bus)
    participant.plan("do:z", "fail:FAILED_PRECONDITION")
    await node.run_participant(participant)
    # The coordinator's queue must exist before the first start command is published (publishes are mandatory).
    unstarted = Coordinator(node.transport, node.units, node.store, sagas=test_sagas, messages=saga_test_messages)
    await node.transport.declare_queue(unstarted.name, unstarted.consumer.bindings())
    starts = [
        Envelope.wrap(RunPlan(keys=["a", "b", "c"], locks=["vm:1"], wait=60), producer="test"),
        Envelope.wrap(RunPlan(keys=["x", "z"], locks=["vm:2"]), producer="test"),
    ]
    for envelope in starts:
        await node.bus.publish(envelope)
    saga_ids = [saga_id_for(envelope.message_id) for envelope in starts]

    crashes = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120  # about 35 s on an idle machine
    statuses = None
    while statuses is None:
        mode = "before" if crashes % 2 == 0 else "after"
        worker = await start_worker(database_url, amqp_url, namespace, "--crash", mode, "--at", "1")
        try:
            while worker.returncode is None and (statuses := await ended(node, saga_ids)) is None:
                assert loop.time() < deadline, f"sagas did not end after {crashes} crashes"
                await asyncio.sleep(0.05)
        finally:
            status = await kill_and_reap(worker)  # never leave a worker behind, even when the test fails
        assert status == -signal.SIGKILL
        crashes += 1

    assert statuses == {saga_ids[0]: SagaStatus.COMPLETED, saga_ids[1]: SagaStatus.COMPENSATED}
    # The first saga: its start and 3 replies; the second: its start, 2 replies and 1 compensation reply. Each of
    # these 8 boundaries is crossed by a crash before its commit and one after it.
    assert crashes >= 16
    rows = await node.pool.fetch("SELECT effect, saga_id FROM saga_effects ORDER BY ctid")
    by_saga = {saga_id: [row["effect"] for row in rows if row["saga_id"] == saga_id] for saga_id in saga_ids}
    assert by_saga[saga_ids[0]] == ["do:a", "do:b", "do:c"]
    assert by_saga[saga_ids[1]] == ["do:x", "undo:x"]
    async with node.store.session() as session:
        assert await session.list_locks() == []


async def test_two_coordinator_processes_side_by_side_never_run_a_step_twice(
    node: SagaNode, database_url: str, amqp_url: str, namespace: str
) -> None:
    participant = PostgresParticipant(node.bus)
    await node.run_participant(participant)
    unstarted = Coordinator(node.transport, node.units, node.store, sagas=test_sagas, messages=saga_test_messages)
    await node.transport.declare_queue(unstarted.name, unstarted.consumer.bindings())
    workers: list[asyncio.subprocess.Process] = []
    try:
        workers += [await start_worker(database_url, amqp_url, namespace) for _ in range(2)]
        starts = [
            Envelope.wrap(RunPlan(keys=[f"s{i}-a", f"s{i}-b", f"s{i}-c"], locks=["shared"], wait=60), producer="t")
            for i in range(12)
        ]
        await node.bus.publish_many(starts)
        saga_ids = [saga_id_for(envelope.message_id) for envelope in starts]

        statuses = await assert_eventually(lambda: ended(node, saga_ids), timeout=45, what="every saga ended")
        assert statuses is not None
        assert set(statuses.values()) == {SagaStatus.COMPLETED}
    finally:
        for worker in workers:
            await kill_and_reap(worker)
    sent = await node.pool.fetch(
        "SELECT saga_id, step, count(*) AS sent FROM bus.journal WHERE type = 'sagatest.do' GROUP BY saga_id, step"
    )
    assert len(sent) == 12 * 3
    assert {row["sent"] for row in sent} == {1}
    rows = await node.pool.fetch("SELECT effect FROM saga_effects")
    assert sorted(row["effect"] for row in rows) == sorted(f"do:s{i}-{key}" for i in range(12) for key in "abc")
