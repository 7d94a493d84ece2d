"""The saga engine on the real RabbitMQ and PostgreSQL: outbox, inbox, relay, coordinator replicas."""

from collections.abc import AsyncIterator
from uuid import UUID

import pytest

from bus.postgres.pool import Pool
from sagas.participant import FENCING_TABLE, check_fencing_token
from sagas.records import SagaStatus
from sagas.work import saga_id_for
from schemas import Aborted, Envelope
from schemas.sagas import StepSucceeded
from tests.helpers import assert_eventually
from tests.sagas_fixtures import PostgresParticipant, RunPlan
from tests.sagas_stack import SagaNode, prepare_database, wait_ended

pytestmark = pytest.mark.integration


@pytest.fixture
async def nodes(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[list[SagaNode]]:
    await prepare_database(database_url)
    opened = [await SagaNode.open(database_url, amqp_url, namespace) for _ in range(3)]
    yield opened
    # Every consumer stops before the namespace goes: a node still consuming would re-declare a deleted queue.
    for node in opened:
        await node.close()
    await opened[0].delete_namespace()


async def start(node: SagaNode, plan: RunPlan) -> UUID:
    envelope = Envelope.wrap(plan, producer="test")
    await node.bus.publish(envelope)
    return saga_id_for(envelope.message_id)


async def effects(pool: Pool) -> list[tuple[str, UUID]]:
    rows = await pool.fetch("SELECT effect, saga_id FROM saga_effects ORDER BY ctid")
    return [(row["effect"], row["saga_id"]) for row in rows]


async def test_sagas_complete_and_compensate_through_the_outbox(nodes: list[SagaNode]) -> None:
    node = nodes[0]
    participant = PostgresParticipant(node.bus)
    participant.plan("do:z", "fail:FAILED_PRECONDITION")
    await node.run_coordinator()
    await node.run_participant(participant)
    good = await start(node, RunPlan(keys=["a", "b"], locks=["vm:1"]))
    bad = await start(node, RunPlan(keys=["x", "y", "z"]))
    assert await wait_ended(node, [good, bad]) == {good: SagaStatus.COMPLETED, bad: SagaStatus.COMPENSATED}
    done = await effects(node.pool)
    assert [effect for effect, saga_id in done if saga_id == good] == ["do:a", "do:b"]
    assert [effect for effect, saga_id in done if saga_id == bad] == ["do:x", "do:y", "undo:y", "undo:x"]
    async with node.store.session() as session:
        assert await session.list_locks() == []


async def test_two_coordinators_side_by_side_never_run_a_step_twice(nodes: list[SagaNode]) -> None:
    first, second, service = nodes
    participant = PostgresParticipant(service.bus)
    for index in range(0, 30, 3):
        participant.plan(f"do:k{index}-c", "fail:ABORTED")
    await first.run_coordinator(prefetch=8)
    await second.run_coordinator(prefetch=8)
    await service.run_participant(participant)
    plans = [RunPlan(keys=[f"k{i}-a", f"k{i}-b", f"k{i}-c"], locks=[f"vm:{i % 4}"], wait=30) for i in range(30)]
    saga_ids = [await start(service, plan) for plan in plans]
    statuses = await wait_ended(service, saga_ids, timeout=60)
    assert sorted(statuses.values()).count(SagaStatus.COMPENSATED) == 10
    assert sorted(statuses.values()).count(SagaStatus.COMPLETED) == 20
    sent = await service.pool.fetch(
        "SELECT saga_id, step, count(*) AS sent FROM bus.journal WHERE saga_id IS NOT NULL AND step IS NOT NULL "
        "AND type IN ('sagatest.do', 'sagatest.undo') GROUP BY saga_id, step"
    )
    assert len(sent) == 20 * 3 + 10 * (3 + 2)  # a failed step was sent too
    assert {row["sent"] for row in sent} == {1}
    done = await effects(service.pool)
    assert len(done) == len(set(done)) == 20 * 3 + 10 * 4


async def test_a_participant_table_refuses_a_stale_fencing_token(nodes: list[SagaNode]) -> None:
    pool = nodes[0].pool
    async with pool.acquire() as connection:
        await connection.execute(FENCING_TABLE.format(table="fencing"))
        await check_fencing_token(connection, "vm:1", 5)
        await check_fencing_token(connection, "vm:1", 5)  # the same holder again
        await check_fencing_token(connection, "vm:1", 7)
        with pytest.raises(Aborted, match="stale fencing token 6 for vm:1"):
            await check_fencing_token(connection, "vm:1", 6)
        with pytest.raises(Aborted, match="carries no fencing token"):
            await check_fencing_token(connection, "vm:2", None)
        assert await connection.fetchval("SELECT token FROM fencing WHERE resource = 'vm:1'") == 7


async def test_replies_of_parallel_steps_handled_at_once_all_count(nodes: list[SagaNode]) -> None:
    node = nodes[0]
    participant = PostgresParticipant(node.bus)
    keys = [f"p{i}" for i in range(8)]
    await node.run_coordinator(prefetch=64)
    await node.run_participant(participant)
    # Planned before the sagas start: a step that reached the participant first would otherwise just run.
    for n in range(3):
        for key in keys:
            participant.plan(f"do:{key}-{n}", "late")
    saga_ids = [await start(node, RunPlan(keys=[f"{key}-{n}" for key in keys], parallel=True)) for n in range(3)]
    await assert_eventually(lambda: len(participant.held) == 24, what="every parallel step in flight")
    # 24 replies at once, published together: several replies of one saga are handled concurrently.
    held, participant.held = participant.held, []
    await node.bus.publish_many(
        [Envelope.wrap(StepSucceeded(result={}), cause=envelope, producer="participant@test") for envelope in held]
    )
    assert await wait_ended(node, saga_ids) == dict.fromkeys(saga_ids, SagaStatus.COMPLETED)
