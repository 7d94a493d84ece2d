"""bench/sagas.py's baseline, the bare hand-written 3-step orchestration, does the same durable work as a saga."""

import asyncpg
import pytest

from bench import sagas_bare

pytestmark = pytest.mark.integration


async def test_the_bare_orchestration_runs_every_saga_through_three_durable_steps(
    amqp_url: str, database_url: str, namespace: str
) -> None:
    await sagas_bare.prepare(database_url)
    roles = ("orchestrator", "orchestrator", "participant")
    workers = [sagas_bare.BareWorker(amqp_url, database_url, namespace, role) for role in roles]
    try:
        for worker in workers:
            await worker.start()
        per_s = await sagas_bare.run_sagas(amqp_url, database_url, namespace, 20, timeout=60)
    finally:
        for worker in workers:
            await worker.close()
        await sagas_bare.delete_queues(amqp_url, namespace)
    assert per_s > 0
    connection = await asyncpg.connect(database_url)
    try:
        sagas = await connection.fetch("SELECT done, status FROM bare.sagas")
        inbox = await connection.fetch("SELECT consumer, count(*) AS n FROM bare.inbox GROUP BY 1 ORDER BY 1")
    finally:
        await connection.close()
    assert [(row["done"], row["status"]) for row in sagas] == [(3, "COMPLETED")] * 20
    # Per saga: the orchestrator took the start and three replies, the participant three steps, each once.
    assert [(row["consumer"], row["n"]) for row in inbox] == [("orchestrator", 80), ("participant", 60)]
