"""The bridge killed with SIGKILL in the middle of a stream of CloudStack events and started again: every
operation CloudStack asked for becomes exactly one strata command and one answer; nothing is lost, nothing repeated.
Every daemon is a process of its own on the real servers (tests.e2e.cloud_support)."""

import uuid
from pathlib import Path
from uuid import UUID

import aio_pika
import pytest

from services.bridge.bootstrap import cloudstack_queue
from tests import cloudstack_wire as wire
from tests.e2e.cloud_support import add_pool, open_cloud
from tests.helpers import assert_eventually

pytestmark = pytest.mark.e2e
OPERATIONS = 40


async def test_a_bridge_killed_mid_stream_loses_and_repeats_nothing(
    postgres_url: str, amqp_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exchange_name = f"cloudstack-events-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("STRATA_BRIDGE_EXCHANGE", exchange_name)
    monkeypatch.setenv("STRATA_BRIDGE_VOLUME_SIZE_BYTES", str(1 << 20))
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    exchange = await wire.declare_exchange(channel, exchange_name)
    answers: list[wire.Parsed] = []
    listener = await channel.declare_queue(exclusive=True, auto_delete=True)
    await listener.bind(exchange, "strata.ActionEvent.#")

    async def heard(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        answers.append(wire.parse(message.routing_key or "", message.body))
        await message.ack()

    await listener.consume(heard)
    namespace = ""
    try:
        async with open_cloud(postgres_url, amqp_url, tmp_path, more=("bridge",)) as cloud:
            namespace = cloud.namespace
            pool = uuid.uuid4()
            await add_pool(cloud, pool, tmp_path / "bridge-pool", name="bridge-pool")
            volumes = [uuid.uuid4() for _ in range(OPERATIONS)]

            def messages(volume: UUID) -> list[wire.Message]:
                entities = {"Volume": volume, "StoragePool": pool, "DataCenter": cloud.zone_id}
                scheduled = wire.action_event(
                    "VOLUME.CREATE", "Scheduled", entity="Volume", entity_uuid=volume, entities=entities
                )
                started = wire.action_event(
                    "VOLUME.CREATE", "Started", entity="Volume", entity_uuid=volume, entities=entities
                )
                return [scheduled, scheduled, started]  # a duplicate delivery, then the Started of the same operation

            first, rest = volumes[: OPERATIONS // 2], volumes[OPERATIONS // 2 :]
            for volume in first:
                for message in messages(volume):
                    await wire.publish(exchange, message)

            async def taken(count: int) -> bool:
                recorded = await cloud.value("SELECT count(*) FROM bridge.events")
                return isinstance(recorded, int) and recorded >= count

            await cloud.wait(lambda: taken(10), "the bridge taking the stream", timeout=60)
            cloud.daemons["bridge"].kill()  # mid-stream: messages in flight, transactions open, acks not sent
            for volume in rest:  # CloudStack goes on publishing while the bridge is down
                for message in messages(volume):
                    await wire.publish(exchange, message)
            cloud.daemons["bridge"].start()

            async def all_answered() -> bool:
                return {a.resource_uuid for a in answers} >= {str(v) for v in volumes}

            await assert_eventually(all_answered, timeout=180, interval=0.2, what="an answer for every operation")
            operations = await cloud.rows(
                "SELECT entity_uuid, count(*) AS n FROM bridge.operations GROUP BY entity_uuid"
            )
            assert {row["entity_uuid"] for row in operations} == set(volumes)
            assert {row["n"] for row in operations} == {1}
            commands = await cloud.value("SELECT count(*) FROM bus.journal WHERE type = 'volume.create'")
            assert commands == OPERATIONS
            ready = await cloud.value(
                "SELECT count(*) FROM storage.volumes WHERE volume_id = ANY($1::uuid[]) AND state = 'Ready'", volumes
            )
            assert ready == OPERATIONS
            sent = await cloud.value("SELECT count(*) FROM bridge.events WHERE outcome = 'command_sent'")
            assert sent == OPERATIONS
            assert all(not answer.failed for answer in answers), [a.fields for a in answers if a.failed]

    finally:
        if namespace:
            await channel.queue_delete(cloudstack_queue(namespace))
        await channel.exchange_delete(exchange_name)
        await connection.close()
