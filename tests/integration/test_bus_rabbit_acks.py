"""`bus.rabbit_acks.AckBatcher` on the real broker: acks arriving from several tasks at once, in batches that finish
out of order, are all taken by RabbitMQ (no tag acked twice, none passed over by a multiple ack sent before it, which
RabbitMQ answers by closing the channel) and none is left unacked, whether they wait to be coalesced or a batch's
are flushed at once."""

import asyncio
import random

import aiormq
import pytest
from aiormq.abc import DeliveredMessage

from bus.rabbit_acks import AckBatcher

pytestmark = pytest.mark.integration
MESSAGES = 600
WORKERS = 6


@pytest.mark.parametrize("flush_each_chunk", [False, True], ids=["coalesced", "flushed-per-batch"])
async def test_concurrent_out_of_order_acks_are_each_taken_once(
    amqp_url: str, namespace: str, flush_each_chunk: bool
) -> None:
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = f"{namespace}.acks"
        await channel.queue_declare(queue, auto_delete=False)
        for index in range(MESSAGES):
            await channel.basic_publish(str(index).encode(), routing_key=queue)
        await channel.basic_qos(prefetch_count=MESSAGES)
        acks = AckBatcher(channel)
        tags: list[int] = []
        all_in = asyncio.Event()

        async def delivered(message: DeliveredMessage) -> None:
            assert message.delivery_tag is not None
            acks.delivered(message.delivery_tag)
            tags.append(message.delivery_tag)
            if len(tags) == MESSAGES:
                all_in.set()

        await channel.basic_consume(queue, delivered)
        await asyncio.wait_for(all_in.wait(), 30)
        chunks = [tags[start : start + 37] for start in range(0, MESSAGES, 37)]
        shuffle = random.Random(7)
        shuffle.shuffle(chunks)

        async def worker(mine: list[list[int]]) -> None:
            for chunk in mine:
                for tag in chunk:
                    acks.ack(tag)
                if flush_each_chunk:  # as the bridge's link does once a batch is settled
                    acks.flush()
                await asyncio.sleep(shuffle.random() / 200)  # a commit's worth of waiting, different each time

        await asyncio.gather(*(worker(chunks[index::WORKERS]) for index in range(WORKERS)))
        await acks.drain()
        assert not channel.is_closed
        await channel.close()

        check = await connection.channel()
        declared = await check.queue_declare(queue, passive=True)
        assert declared.message_count == 0  # nothing left unacked came back
        await check.queue_delete(queue)
    finally:
        await connection.close()
