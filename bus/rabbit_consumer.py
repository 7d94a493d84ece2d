"""A consumer on RabbitMQ that survives reconnects and server-side cancels, and its deliveries."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol
from uuid import uuid4

import structlog
from aiormq.abc import AbstractChannel, AbstractConnection, DeliveredMessage
from pamqp.commands import Basic

from bus.ports import DeliveryHandler, HeaderValue, WireMessage
from bus.rabbit_acks import AckBatcher
from bus.rabbit_connection import CONNECTION_ERRORS
from bus.rabbit_wire import wire_of
from bus.topology import ORIGIN_QUEUE_HEADER, RETRY_LEVEL_HEADER, Topology

log = structlog.get_logger(__name__)


class ConsumerLink(Protocol):
    """What a subscription and its deliveries need of the transport that made them (`RabbitTransport` is one)."""

    @property
    def topology(self) -> Topology:
        """The namespace's names (the retry and dead exchanges)."""

    @property
    def connection_name(self) -> str:
        """The transport's connection name, which prefixes consumer tags."""

    @property
    def retry_delays(self) -> Sequence[float]:
        """Seconds of each retry level."""

    async def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        message: WireMessage,
        extra_headers: Mapping[str, HeaderValue] | None = None,
    ) -> None:
        """Publish to a full exchange name, confirmed, mandatory, persistent."""

    async def wait_consumer_connection(self) -> AbstractConnection:
        """The consumers' connection, once it is open."""

    def forget(self, subscription: "RabbitSubscription") -> None:
        """Stop re-attaching `subscription` after reconnects (it was cancelled)."""


# Declares the queue to consume on a fresh channel and returns its name (a watch's private queue is server-named).
PrepareQueue = Callable[[AbstractChannel], Awaitable[str]]


class RabbitDelivery:
    """One delivery on one channel. Settling after that channel died does nothing: the broker redelivers it."""

    __slots__ = ("_acks", "_tag", "_transport", "message", "queue", "redelivered", "settled")

    def __init__(self, transport: ConsumerLink, acks: AckBatcher, queue: str, delivered: DeliveredMessage) -> None:
        deliver = delivered.delivery
        assert isinstance(deliver, Basic.Deliver)  # consumers only ever get Basic.Deliver
        self._transport = transport
        self._acks = acks
        self._tag = deliver.delivery_tag or 0
        self.message: WireMessage = wire_of(delivered)
        self.queue = queue
        self.redelivered = bool(deliver.redelivered)
        self.settled = False

    async def ack(self) -> None:
        """Settle as done (sent with the other acks of this loop turn)."""
        if self._settle():
            self._acks.ack(self._tag)

    async def requeue(self) -> None:
        """Give it back for immediate redelivery."""
        if self._settle():
            await self._acks.reject(self._tag)

    async def retry_later(self, level: int, headers: Mapping[str, HeaderValue]) -> None:
        """Publish a copy to delay `level` (confirmed), then ack this one."""
        if self.settled:
            return
        self._transport.retry_delays[level]  # an unknown level raises before anything moves
        extra = {**headers, RETRY_LEVEL_HEADER: str(level)}
        await self._transport.publish_raw(self._transport.topology.exchange("retry"), self.queue, self.message, extra)
        await self.ack()

    async def dead_letter(self, headers: Mapping[str, HeaderValue]) -> None:
        """Publish a copy to the dead letters (confirmed), then ack this one."""
        if self.settled:
            return
        extra = {ORIGIN_QUEUE_HEADER: self.queue, **headers}
        await self._transport.publish_raw(self._transport.topology.exchange("dead"), self.queue, self.message, extra)
        await self.ack()

    def _settle(self) -> bool:
        if self.settled:
            return False
        self.settled = True
        return True


class RabbitSubscription:
    """Consumes one queue; re-attached by the transport after a reconnect and by itself after a server cancel."""

    def __init__(
        self,
        transport: ConsumerLink,
        queue: str,
        handler: DeliveryHandler,
        *,
        prefetch: int,
        prepare: PrepareQueue | None = None,
        auto_ack: bool = False,
    ) -> None:
        self._transport = transport
        self.queue = queue
        self._handler = handler
        self._prefetch = prefetch
        self._prepare = prepare
        self._auto_ack = auto_ack
        self._channel: AbstractChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancelled = False
        self._tag = ""
        self._attach_lock = asyncio.Lock()
        self._acks: AckBatcher | None = None

    async def attach(self, connection: AbstractConnection) -> None:
        """Open a channel on `connection` and start consuming (again); no-op if already consuming on it."""
        async with self._attach_lock:
            current = self._channel
            if self._cancelled or (current is not None and not current.is_closed and current.connection is connection):
                return
            await self._attach(connection)

    async def _attach(self, connection: AbstractConnection) -> None:
        channel = await connection.channel(publisher_confirms=False)
        await channel.basic_qos(prefetch_count=self._prefetch)
        if self._prepare is not None:
            self.queue = await self._prepare(channel)
        channel.on_consumer_cancel_callbacks.add(self._on_server_cancel)
        self._tag = f"{self._transport.connection_name}.{uuid4().hex[:8]}"
        self._channel = channel
        acks = self._acks = AckBatcher(channel)

        async def on_message(delivered: DeliveredMessage) -> None:
            # aiormq runs each delivery in a task of the channel's; a graceful stop cancels the consumer first and
            # waits for these tasks before it closes the channel, so the handlers in flight finish. (Only a lost
            # channel cancels them, and then their messages come again anyway.)
            delivery = RabbitDelivery(self._transport, acks, self.queue, delivered)
            if self._auto_ack:
                delivery.settled = True
            else:
                acks.delivered(delivery._tag)
            task = asyncio.current_task()
            assert task is not None  # aiormq calls consumers inside a task
            self._tasks.add(task)
            try:
                await self._run(delivery)
            finally:
                self._tasks.discard(task)

        await channel.basic_consume(self.queue, on_message, no_ack=self._auto_ack, consumer_tag=self._tag)

    async def _run(self, delivery: RabbitDelivery) -> None:
        try:
            await self._handler(delivery)
        except Exception:
            log.exception("delivery handler failed; message requeued", queue=self.queue)
            await delivery.requeue()

    async def _on_server_cancel(self, frame: object) -> None:
        # The broker cancelled us (queue deleted, leader moved, ...): aio-pika would stay silent (#334). This runs
        # on the channel's reader, which closing the channel needs, so the recovery runs in a task of its own.
        if self._cancelled:
            return
        log.warning("consumer cancelled by the broker; re-attaching", queue=self.queue)
        task = asyncio.get_running_loop().create_task(self._recover(self._channel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recover(self, cancelled_channel: AbstractChannel | None) -> None:
        if cancelled_channel is not None and not cancelled_channel.is_closed:
            await self._close_channel(cancelled_channel)
        delay = 0.05
        while not self._cancelled:
            try:
                await self.attach(await self._transport.wait_consumer_connection())
                return
            except Exception as error:  # whatever broke, the consumer must come back: log it and try again
                log.warning("re-attaching failed; trying again", queue=self.queue, error=type(error).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _close_channel(self, channel: AbstractChannel) -> None:
        with contextlib.suppress(*CONNECTION_ERRORS):  # closing a channel that is already gone
            await channel.close()

    async def cancel(self) -> None:
        """Stop taking messages, let the handlers in flight settle theirs, and close the channel."""
        if self._cancelled:
            return
        self._cancelled = True
        self._transport.forget(self)
        channel = self._channel
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(*CONNECTION_ERRORS):  # the channel died: the broker stops delivering anyway
                await channel.basic_cancel(self._tag)
        in_flight = self._tasks - {asyncio.current_task()}  # a handler may stop its own consumer
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
        if self._acks is not None:
            await self._acks.drain()
        if channel is not None and not channel.is_closed:
            await self._close_channel(channel)
