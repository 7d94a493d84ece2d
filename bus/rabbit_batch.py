"""Many publishes written to the socket at once, each still mandatory, persistent and confirmed on its own.

aiormq writes every publish as a separate socket write, one system call per message, which is what bounds a
publisher on a small machine. Here a batch takes the channel's lock once, numbers each message for publisher
confirms exactly as `Channel.basic_publish` does (its confirmation future, and its message id for returns of
unroutable messages), and hands all of their frames to the connection's writer as one payload. The broker sees
ordinary publishes; aiormq's reader settles the futures as confirms, nacks and returns arrive.
"""

import asyncio
from collections.abc import Callable, Sequence

import aiormq
from aiormq.abc import ChannelFrame
from pamqp import commands as spec
from pamqp.header import ContentHeader

Publish = tuple[str, str, bytes, spec.Basic.Properties]
"""(exchange, routing key, body, properties)"""


async def write_publishes(channel: aiormq.Channel, publishes: Sequence[Publish]) -> list[asyncio.Future[object]]:
    """Write `publishes` in one go; return their confirmation futures (result: ack; error: return or nack)."""
    frames: list[object] = []
    confirmations: list[asyncio.Future[object]] = []
    async with channel.lock:
        for exchange, routing_key, body, properties in publishes:
            channel.delivery_tag += 1
            tag = channel.delivery_tag
            confirmation = channel.create_future()
            channel.confirmations[tag] = confirmation
            message_id = properties.message_id or ""
            channel.message_id_delivery_tag[message_id] = tag
            confirmation.add_done_callback(_forget(channel, message_id, tag))
            confirmations.append(confirmation)
            frames.append(spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True))
            frames.append(ContentHeader(properties=properties, body_size=len(body)))
            frames.extend(channel._split_body(body))
        payload = ChannelFrame.marshall(channel_number=channel.number, frames=frames)  # type: ignore[arg-type]
        await channel.write_queue.put(payload)
    return confirmations


def _forget(channel: aiormq.Channel, message_id: str, tag: int) -> Callable[[asyncio.Future[object]], None]:
    def forget(_: asyncio.Future[object]) -> None:
        if channel.message_id_delivery_tag.get(message_id) == tag:
            channel.message_id_delivery_tag.pop(message_id, None)

    return forget
