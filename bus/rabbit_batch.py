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


class PublishCoalescer:
    """Gathers the publishes that callers make in the same turn of the event loop into one `write_publishes`.

    Each caller still gets the outcome of its own message (its confirm, return or nack, or the error that kept the
    batch from being written), so `publish` keeps its per-message meaning while a burst of concurrent publishes
    (an outbox relay's batch, a saga's parallel steps) costs one system call instead of one each.
    """

    def __init__(self) -> None:
        self._pending: dict[aiormq.Channel, list[tuple[Publish, asyncio.Future[object]]]] = {}
        self._writers: set[asyncio.Task[None]] = set()

    def publish(self, channel: aiormq.Channel, publish: Publish) -> asyncio.Future[object]:
        """Queue `publish` on `channel`; the future settles as its confirmation does."""
        outcome: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        waiting = self._pending.get(channel)
        if waiting is None:
            waiting = self._pending[channel] = []
            writer = asyncio.get_running_loop().create_task(self._write(channel))
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        waiting.append((publish, outcome))
        return outcome

    async def _write(self, channel: aiormq.Channel) -> None:
        await asyncio.sleep(0)  # let the other publishes of this turn join the batch
        batch = self._pending.pop(channel, [])
        batch = [(publish, outcome) for publish, outcome in batch if not outcome.done()]  # callers cancelled
        if not batch:
            return
        try:
            confirmations = await write_publishes(channel, [publish for publish, _ in batch])
        except BaseException as error:  # the caller's publish loop decides what a failure to write means
            for _, outcome in batch:
                if not outcome.done():
                    outcome.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for (_, outcome), confirmation in zip(batch, confirmations, strict=True):
            confirmation.add_done_callback(_settle(outcome))


def _settle(outcome: asyncio.Future[object]) -> Callable[[asyncio.Future[object]], None]:
    def settle(confirmation: asyncio.Future[object]) -> None:
        if outcome.done():  # the caller was cancelled: still retrieve the outcome so that asyncio does not warn
            if not confirmation.cancelled():
                confirmation.exception()
            return
        if confirmation.cancelled():
            outcome.cancel()
        elif (error := confirmation.exception()) is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(confirmation.result())

    return settle
