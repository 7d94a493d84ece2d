"""The aiormq internals that `bus.rabbit_batch` writes through, on the real broker and the installed aiormq.

`write_publishes` numbers publishes for confirms as aiormq's `Channel.basic_publish` does, and hands their frames
to the connection's writer itself. These tests fail on an aiormq release that changes any of it (pyproject pins
the minor version; raise the pin only once they pass): the attributes it touches, a confirm, a return of an
unroutable message matched to its publish, a nack-free mix with aiormq's own publishes on the same channel, and
no bookkeeping left behind once every publish is settled.
"""

import asyncio
from collections.abc import AsyncIterator

import aiormq
import pytest
from aiormq.abc import ChannelFrame
from pamqp import commands as spec
from pamqp.body import ContentBody

from bus.rabbit_batch import PublishCoalescer, write_publishes

pytestmark = pytest.mark.integration


@pytest.fixture
async def channel(amqp_url: str, namespace: str) -> AsyncIterator[tuple[aiormq.Channel, str]]:
    """A confirming channel and a queue bound to the default exchange by its name (deleted afterwards)."""
    connection = await aiormq.connect(amqp_url)
    try:
        opened = await connection.channel(publisher_confirms=True)
        assert isinstance(opened, aiormq.Channel)
        queue = f"{namespace}.batch"
        await opened.queue_declare(queue, auto_delete=False)
        yield opened, queue
        await opened.queue_delete(queue)
    finally:
        await connection.close()


def properties(message_id: str) -> spec.Basic.Properties:
    return spec.Basic.Properties(message_id=message_id, delivery_mode=2, content_type="application/json")


async def test_the_channel_internals_written_through_are_there(channel: tuple[aiormq.Channel, str]) -> None:
    opened, _ = channel
    async with opened.lock:  # taken once for the whole batch, as basic_publish takes it for one
        pass
    assert isinstance(opened.delivery_tag, int)
    assert hasattr(opened.confirmations, "__setitem__")
    assert isinstance(opened.message_id_delivery_tag, dict)
    assert isinstance(opened.write_queue, asyncio.Queue)
    assert isinstance(opened.number, int)
    frames = list(opened._split_body(b"x" * 10))
    assert [type(frame) for frame in frames] == [ContentBody]
    marshalled = ChannelFrame.marshall(channel_number=opened.number, frames=frames)
    assert isinstance(marshalled, ChannelFrame)
    assert marshalled.payload.endswith(b"x" * 10 + b"\xce")  # the body frame, then AMQP's frame end


async def test_batched_publishes_are_confirmed_routed_and_returned_like_aiormqs_own(
    channel: tuple[aiormq.Channel, str],
) -> None:
    opened, queue = channel
    routed = [(queue, f"routed-{n}") for n in range(3)]
    publishes = [("", key, b'{"n": 1}', properties(message_id)) for key, message_id in routed]
    publishes.append(("", f"{queue}.nobody", b"{}", properties("unroutable")))

    confirmations = await write_publishes(opened, publishes)
    results = await asyncio.gather(*confirmations, return_exceptions=True)

    assert [isinstance(result, spec.Basic.Ack) for result in results[:3]] == [True] * 3
    assert isinstance(results[3], aiormq.exceptions.PublishError)  # the return found its publish by message id
    # aiormq's own publish on the same channel after the batch: the delivery tags still agree.
    confirm = await opened.basic_publish(b"{}", routing_key=queue, properties=properties("after"), mandatory=True)
    assert isinstance(confirm, spec.Basic.Ack)
    declared = await opened.queue_declare(queue, passive=True)
    assert declared.message_count == 4
    assert opened.message_id_delivery_tag == {}  # nothing kept once every publish settled
    assert not opened.confirmations


async def test_the_coalescer_gives_each_caller_its_own_outcome(channel: tuple[aiormq.Channel, str]) -> None:
    opened, queue = channel
    coalescer = PublishCoalescer()
    outcomes = [
        coalescer.publish(opened, ("", queue, b"{}", properties("one"))),
        coalescer.publish(opened, ("", f"{queue}.nobody", b"{}", properties("two"))),
    ]
    results = await asyncio.gather(*outcomes, return_exceptions=True)
    assert isinstance(results[0], spec.Basic.Ack)
    assert isinstance(results[1], aiormq.exceptions.PublishError)
