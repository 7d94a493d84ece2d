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

from sagas.coordinator import Coordinator
from sagas.records import SagaStatus
from sagas.work import saga_id_for
from schemas import Envelope
from tests.e2e.sagas_worker import crash_settings
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
        Envelope.wrap(RunPlan(keys=["x", "y", "z"], locks=["vm:2"]), producer="test"),
    ]
    for envelope in starts:
        await node.bus.publish(envelope)
    saga_ids = [saga_id_for(envelope.message_id) for envelope in starts]

    crashes = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 50
    statuses = None
    while statuses is None:
        mode = "before" if crashes % 2 == 0 else "after"
        worker = await start_worker(database_url, amqp_url, namespace, "--crash", mode, "--at", "1")
        while worker.returncode is None and (statuses := await ended(node, saga_ids)) is None:
            assert loop.time() < deadline, f"sagas did not end after {crashes} crashes"
            await asyncio.sleep(0.05)
        if worker.returncode is None:
            worker.send_signal(signal.SIGKILL)
        assert await worker.wait() == -signal.SIGKILL
        crashes += 1

    assert statuses == {saga_ids[0]: SagaStatus.COMPLETED, saga_ids[1]: SagaStatus.COMPENSATED}
    # Each saga has 1 start + 3 replies, plus 2 compensation replies for the second: 10 boundaries, each crossed
    # by a crash before its commit and one after it.
    assert crashes >= 20
    rows = await node.pool.fetch("SELECT effect, saga_id FROM saga_effects ORDER BY ctid")
    by_saga = {saga_id: [row["effect"] for row in rows if row["saga_id"] == saga_id] for saga_id in saga_ids}
    assert by_saga[saga_ids[0]] == ["do:a", "do:b", "do:c"]
    assert by_saga[saga_ids[1]] == ["do:x", "do:y", "undo:y", "undo:x"]
    async with node.store.session() as session:
        assert await session.list_locks() == []
