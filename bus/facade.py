"""The `Bus` that services and sagas hold: publish typed envelopes, ask and answer requests."""

from collections.abc import Sequence
from itertools import groupby

from bus.codec import decode, encode, exchange_for
from bus.ports import Transport, WireMessage
from schemas import Envelope, MessageRegistry, registry


class Bus:
    """Typed publishing on a transport: commands go to `<ns>.commands`, events to `<ns>.events`, keyed by
    the payload's `routing_key()` (its wire type unless the message routes by content, like agent commands)."""

    def __init__(self, transport: Transport, *, messages: MessageRegistry = registry) -> None:
        self.transport = transport
        self.messages = messages

    async def publish(self, envelope: Envelope) -> None:
        """Publish one message and return once the broker confirmed it (raises Unroutable if no queue wants it)."""
        await self.transport.publish(exchange_for(envelope), envelope.payload.routing_key(), encode(envelope))

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        """Publish several messages with their confirms pipelined; return once every one is confirmed."""
        for exchange, group in groupby(envelopes, key=exchange_for):
            await self.transport.publish_many(
                exchange, [(envelope.payload.routing_key(), encode(envelope)) for envelope in group]
            )

    async def request(self, envelope: Envelope, *, timeout: float | None = None) -> Envelope:
        """Send a request (usually a query) and return its reply; raises RequestTimedOut after `timeout` s (by
        default the transport's `request_timeout` setting)."""
        reply = await self.transport.request(
            exchange_for(envelope), envelope.payload.routing_key(), encode(envelope), timeout=timeout
        )
        return decode(reply, self.messages)

    async def reply(self, request: WireMessage, envelope: Envelope) -> None:
        """Answer a request received as `request`."""
        await self.transport.reply(request, encode(envelope))
