"""The baseline of bench/sagas.py: a bare, hand-written 3-step orchestration on aiormq and asyncpg.

The same durability as strata's sagas, without the engine, the outbox or the codec: per step the orchestrator
commits (its inbox row and the saga's progress), publishes the step command (persistent, with a publisher
confirm), then acks what it consumed; the participant consumes it, commits (its inbox row), publishes the reply the
same way, then acks. Quorum queues, as strata's default; the same processes as strata's run (two orchestrators
and one participant, each with its own pool and channel), N sagas started at once and run concurrently.
"""

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any
from uuid import UUID, uuid4, uuid5

import aiormq
import asyncpg
from aiormq.abc import DeliveredMessage

STEPS = 3
PREFETCH = 64
TABLES = """
CREATE SCHEMA IF NOT EXISTS bare;
CREATE TABLE IF NOT EXISTS bare.inbox (
    consumer text NOT NULL, message_id uuid NOT NULL, PRIMARY KEY (consumer, message_id)
);
CREATE TABLE IF NOT EXISTS bare.sagas (
    saga_id uuid PRIMARY KEY, done int NOT NULL, status text NOT NULL, updated_at timestamptz NOT NULL
);
"""
PERSISTENT = 2


class BareWorker:
    """One process's channel (confirms on) and pool; `role` is `orchestrator` or `participant`."""

    def __init__(self, amqp_url: str, database_url: str, namespace: str, role: str) -> None:
        self.amqp_url, self.database_url, self.role = amqp_url, database_url, role
        self.orchestrator_queue = f"{namespace}.bare-orchestrator"
        self.participant_queue = f"{namespace}.bare-participant"
        self.connection: aiormq.abc.AbstractConnection | None = None
        self.channel: aiormq.abc.AbstractChannel | None = None
        self.pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(self.database_url, min_size=4, max_size=12)
        self.connection = await aiormq.connect(self.amqp_url)
        self.channel = await self.connection.channel(publisher_confirms=True)
        await declare(self.channel, self.orchestrator_queue, self.participant_queue)
        await self.channel.basic_qos(prefetch_count=PREFETCH)
        handle: Callable[[DeliveredMessage], Coroutine[Any, Any, None]] = (
            self.orchestrate if self.role == "orchestrator" else self.participate
        )
        queue = self.orchestrator_queue if self.role == "orchestrator" else self.participant_queue
        await self.channel.basic_consume(queue, self._guarded(handle))

    def _guarded(
        self, handle: Callable[[DeliveredMessage], Coroutine[Any, Any, None]]
    ) -> Callable[[DeliveredMessage], Coroutine[Any, Any, None]]:
        """A failed message (the database refusing a connection) goes back to its queue, as strata retries it."""

        async def guarded(message: DeliveredMessage) -> None:
            try:
                await handle(message)
            except (asyncpg.PostgresError, OSError):
                assert self.channel is not None
                assert message.delivery_tag is not None
                await self.channel.basic_reject(message.delivery_tag, requeue=True)

        return guarded

    async def close(self) -> None:
        """Stop consuming and let go of the connections."""
        if self.connection is not None:
            await self.connection.close()
        if self.pool is not None:
            await self.pool.close()

    async def orchestrate(self, message: DeliveredMessage) -> None:
        """A start or a step's reply: inbox row and the saga's progress in one commit, then the next step."""
        assert self.pool is not None
        body = json.loads(message.body)
        saga_id = UUID(body["saga_id"])
        next_step: int | None = None
        async with self.pool.acquire() as connection, connection.transaction():
            if await self._first_time(connection, message):
                if body["kind"] == "start":
                    await connection.execute(
                        "INSERT INTO bare.sagas (saga_id, done, status, updated_at) "
                        "VALUES ($1, 0, 'RUNNING', clock_timestamp()) ON CONFLICT DO NOTHING",
                        saga_id,
                    )
                    next_step = 0
                else:
                    done = await connection.fetchval(
                        "UPDATE bare.sagas SET done = done + 1, updated_at = clock_timestamp(), "
                        f"status = CASE WHEN done + 1 >= {STEPS} THEN 'COMPLETED' ELSE status END "
                        "WHERE saga_id = $1 AND done = $2 RETURNING done",
                        saga_id,
                        int(body["step"]),
                    )
                    next_step = done if done is not None and done < STEPS else None
        if next_step is not None:
            step = {"kind": "step", "saga_id": str(saga_id), "step": next_step}
            await self._publish(self.participant_queue, step, uuid5(saga_id, f"step/{next_step}"))
        await self._ack(message)

    async def participate(self, message: DeliveredMessage) -> None:
        """A step: nothing to do but answer, with its inbox row committed first (a redelivery answers again)."""
        assert self.pool is not None
        body = json.loads(message.body)
        async with self.pool.acquire() as connection, connection.transaction():
            await self._first_time(connection, message)
        reply = {"kind": "reply", "saga_id": body["saga_id"], "step": body["step"]}
        await self._publish(self.orchestrator_queue, reply, uuid5(UUID(body["saga_id"]), f"reply/{body['step']}"))
        await self._ack(message)

    async def _first_time(self, connection: Any, message: DeliveredMessage) -> bool:
        status = await connection.execute(
            "INSERT INTO bare.inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            self.role,
            UUID(str(message.header.properties.message_id)),
        )
        return bool(status != "INSERT 0 0")

    async def _publish(self, queue: str, body: dict[str, object], message_id: UUID) -> None:
        assert self.channel is not None
        await self.channel.basic_publish(
            json.dumps(body).encode(),
            routing_key=queue,
            properties=aiormq.spec.Basic.Properties(
                delivery_mode=PERSISTENT, message_id=str(message_id), content_type="application/json"
            ),
        )

    async def _ack(self, message: DeliveredMessage) -> None:
        assert self.channel is not None
        assert message.delivery_tag is not None
        await self.channel.basic_ack(message.delivery_tag)


async def declare(channel: aiormq.abc.AbstractChannel, *queues: str) -> None:
    """The bare run's durable quorum queues."""
    for queue in queues:
        await channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})


async def prepare(database_url: str) -> None:
    """Create the bare run's tables."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(TABLES)
    finally:
        await connection.close()


async def run_sagas(amqp_url: str, database_url: str, namespace: str, n: int, timeout: float) -> float:
    """Start `n` bare sagas at once (the workers already run); return sagas per second, start to last completion."""
    connection = await aiormq.connect(amqp_url)
    database = await asyncpg.connect(database_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = f"{namespace}.bare-orchestrator"
        await declare(channel, queue, f"{namespace}.bare-participant")
        await database.execute("TRUNCATE bare.sagas")  # a run counts its own sagas only
        started_at = time.time()
        await asyncio.gather(
            *(
                channel.basic_publish(
                    json.dumps({"kind": "start", "saga_id": str(uuid4())}).encode(),
                    routing_key=queue,
                    properties=aiormq.spec.Basic.Properties(delivery_mode=PERSISTENT, message_id=str(uuid4())),
                )
                for _ in range(n)
            )
        )
        deadline = time.monotonic() + timeout
        while True:
            row = await database.fetchrow(
                "SELECT count(*) AS done, extract(epoch FROM max(updated_at)) AS last FROM bare.sagas "
                "WHERE status = 'COMPLETED'"
            )
            assert row is not None
            if row["done"] >= n:
                return n / (float(row["last"]) - started_at)
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: only {row['done']} of {n} bare sagas completed within {timeout}s")
            await asyncio.sleep(0.05)
    finally:
        await database.close()
        await connection.close()


async def delete_queues(amqp_url: str, namespace: str) -> None:
    """Remove the bare run's queues."""
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel()
        for queue in (f"{namespace}.bare-orchestrator", f"{namespace}.bare-participant"):
            await channel.queue_delete(queue)
    finally:
        await connection.close()
