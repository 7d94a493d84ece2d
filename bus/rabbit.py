"""RabbitTransport: the bus on RabbitMQ, on aiormq (aio-pika's protocol layer) with our own recovery.

Every publish is persistent, `mandatory` and confirmed; an unroutable message raises `Unroutable`, a nack
`PublishRejected`, and a publish during an outage waits up to `publish_outage_bound` seconds, then raises
`BrokerUnavailable`. Queues are durable quorum queues by default. Consumers ack manually, after their handler
committed. The topology and the consumers are held strongly and restored on every reconnect.
"""

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from typing import cast
from uuid import uuid4

import aiormq
import structlog
from aiormq.abc import AbstractChannel, AbstractConnection, DeliveredMessage
from pamqp.common import FieldTable

from bus.errors import BrokerUnavailable, RequestTimedOut, Unroutable
from bus.ports import Binding, DeadLetter, DeliveryHandler, HandlingObservers, HeaderValue, QueueKind, WireMessage
from bus.rabbit_connection import CONNECTION_ERRORS, RabbitConnection
from bus.rabbit_consumer import RabbitSubscription
from bus.rabbit_dead import RabbitDeadLetters
from bus.rabbit_publish import RabbitPublisher
from bus.rabbit_wire import wire_of
from bus.settings import BusSettings
from bus.topology import (
    IN_REPLY_TO_HEADER,
    RETRY_LEVEL_HEADER,
    Topology,
    dead_queue_arguments,
    delay_queue_arguments,
    service_queue_arguments,
)
from schemas.errors import FailedPrecondition, InvalidArgument, StrataError

log = structlog.get_logger(__name__)
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


class RabbitTransport:
    """The transport on a RabbitMQ broker, every name under `settings.namespace`."""

    def __init__(
        self, settings: BusSettings | None = None, *, purpose: str = "bus", declare_topology: bool = True
    ) -> None:
        """`purpose` names the connection; tools that only look (the CLI) pass `declare_topology=False`."""
        self.settings = settings or BusSettings()
        self._declare_topology = declare_topology
        self.topology = Topology(self.settings.namespace)
        self.handling = HandlingObservers()
        # The namespace leads the connection name so that an operator (or a test) can find this process's links.
        self.connection_name = f"{self.topology.namespace}:{purpose}:{os.getpid()}:{uuid4().hex[:6]}"
        # Publishing and consuming use separate connections: when RabbitMQ's flow control slows a publisher, it
        # blocks that publisher's whole connection, and the consumers' deliveries and acks must not wait with it.
        self._link = RabbitConnection(
            self.settings.amqp_url,
            name=self.connection_name,
            on_connect=self._on_connect,
            reconnect_delay_max=self.settings.reconnect_delay_max,
        )
        self._consumer_link = RabbitConnection(
            self.settings.amqp_url,
            name=f"{self.connection_name}:consume",
            on_connect=self._on_consumer_connect,
            reconnect_delay_max=self.settings.reconnect_delay_max,
        )
        self._consumer_link_started = False
        self._consumer_link_lock = asyncio.Lock()
        self._queues: dict[str, tuple[tuple[Binding, ...], QueueKind]] = {}
        self._subscriptions: set[RabbitSubscription] = set()
        # Channels by role; aiormq's concrete Channel, whose publish can skip waiting for the socket to drain.
        self._publisher: aiormq.Channel | None = None
        self._control: aiormq.Channel | None = None
        self._replier: aiormq.Channel | None = None
        self._replies: dict[str, asyncio.Future[WireMessage]] = {}
        self._channel_lock = asyncio.Lock()
        self.dead_letters = RabbitDeadLetters(self)
        self.publisher = RabbitPublisher(self.settings, self._channel, self.topology.exchange)

    @property
    def namespace(self) -> str:
        return self.topology.namespace

    @property
    def retry_delays(self) -> Sequence[float]:
        return self.settings.retry_delays

    @property
    def handler_timeout(self) -> float:
        return self.settings.handler_timeout

    @property
    def reconnects(self) -> int:
        """How often the connection was re-established (for tests and metrics)."""
        return self._link.reconnects + self._consumer_link.reconnects

    @property
    def connected(self) -> bool:
        """Whether the broker is reachable now: the publishing connection is up, and the consuming one once used."""
        consuming = not self._consumer_link_started or self._consumer_link.is_open
        return self._link.is_open and consuming

    # --- life cycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._link.start(self.settings.publish_outage_bound)

    async def close(self) -> None:
        for subscription in list(self._subscriptions):
            await subscription.cancel()
        for future in self._replies.values():
            future.cancel()
        await self._consumer_link.close()
        await self._link.close()

    async def _on_connect(self, connection: AbstractConnection) -> None:
        channel = await connection.channel(publisher_confirms=False)
        if self._declare_topology:
            await self._declare_fixed(channel)
        for name, (bindings, kind) in self._queues.items():
            await self._declare_queue_on(channel, name, bindings, kind)
        self._control = cast(aiormq.Channel, channel)
        self._publisher = cast(aiormq.Channel, await connection.channel(publisher_confirms=True))
        self._replier = None

    async def _on_consumer_connect(self, connection: AbstractConnection) -> None:
        for subscription in list(self._subscriptions):
            await subscription.attach(connection)

    async def wait_connection(self) -> AbstractConnection:
        """The open publishing connection, waiting for a reconnect up to the outage bound."""
        return await self._link.current(time.monotonic() + self.settings.publish_outage_bound)

    async def wait_consumer_connection(self) -> AbstractConnection:
        """The open consuming connection (opened on first use), waiting for a reconnect up to the outage bound."""
        async with self._consumer_link_lock:
            if not self._consumer_link_started:
                await self._consumer_link.start(self.settings.publish_outage_bound)
                self._consumer_link_started = True
        return await self._consumer_link.current(time.monotonic() + self.settings.publish_outage_bound)

    def forget(self, subscription: RabbitSubscription) -> None:
        """Stop restoring a cancelled subscription."""
        self._subscriptions.discard(subscription)

    # --- topology -----------------------------------------------------------------------------------------

    async def _declare_fixed(self, channel: AbstractChannel) -> None:
        t = self.topology
        for short, kind in (("commands", "topic"), ("events", "topic"), ("retry", "headers"), ("dead", "fanout")):
            await channel.exchange_declare(t.exchange(short), exchange_type=kind, durable=True)
        await channel.queue_declare(t.dead_queue, durable=True, arguments=_table(dead_queue_arguments()))
        await channel.queue_bind(t.dead_queue, t.exchange("dead"), routing_key="")
        for level, delay in enumerate(self.settings.retry_delays):
            queue = t.delay_queue(level)
            await channel.queue_declare(queue, durable=True, arguments=_table(delay_queue_arguments(delay)))
            await channel.queue_bind(
                queue, t.exchange("retry"), arguments={"x-match": "all", RETRY_LEVEL_HEADER: str(level)}
            )

    async def _declare_queue_on(
        self, channel: AbstractChannel, name: str, bindings: Sequence[Binding], kind: QueueKind
    ) -> None:
        arguments = service_queue_arguments(
            kind, dead_exchange=self.topology.exchange("dead"), delivery_limit=self.settings.delivery_limit
        )
        await channel.queue_declare(name, durable=True, arguments=_table(arguments))
        for binding in bindings:
            await channel.queue_bind(name, self.topology.exchange(binding.exchange), routing_key=binding.routing_key)

    async def declare_queue(self, name: str, bindings: Sequence[Binding], *, kind: QueueKind = QueueKind.QUORUM) -> str:
        full = self.topology.queue(name)
        for binding in bindings:
            if binding.exchange not in ("commands", "events"):
                raise InvalidArgument(f"queues bind to 'commands' or 'events', not {binding.exchange!r}")
        known = self._queues.get(full)
        merged = tuple(dict.fromkeys((*(known[0] if known else ()), *bindings)))
        channel = await self._channel("control")
        try:
            await self._declare_queue_on(channel, full, merged, kind)
        except aiormq.exceptions.ChannelPreconditionFailed as error:
            raise FailedPrecondition(
                f"queue {full} exists with other arguments than a {kind} queue ({error}); delete it or keep its kind"
            ) from None
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailable(f"could not declare {full}: {type(error).__name__}") from None
        self._queues[full] = (merged, kind)
        return full

    async def consumers(self, name: str) -> int | None:
        full = self.topology.queue(name)
        connection = await self.wait_connection()
        try:
            channel = await connection.channel(publisher_confirms=False)
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailable(f"could not look at {full}: {type(error).__name__}") from None
        try:  # a passive declare of a missing queue closes its channel: a channel of its own
            declared = await channel.queue_declare(full, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailable(f"could not look at {full}: {type(error).__name__}") from None
        await channel.close()
        return declared.consumer_count or 0

    # --- publishing ---------------------------------------------------------------------------------------

    async def publish(self, exchange: str, routing_key: str, message: WireMessage) -> None:
        await self.publish_raw(self.topology.exchange(exchange), routing_key, message)

    async def publish_many(self, exchange: str, messages: Sequence[tuple[str, WireMessage]]) -> None:
        await self.publisher.publish_many(self.topology.exchange(exchange), messages)

    async def publish_each(self, items: Sequence[tuple[str, str, WireMessage]]) -> list[BaseException | None]:
        return await self.publisher.publish_each(items)

    async def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        message: WireMessage,
        extra_headers: Mapping[str, HeaderValue] | None = None,
        *,
        channel_kind: str = "publisher",
    ) -> None:
        """Publish to a full exchange name ('' is the default exchange), confirmed, mandatory, persistent."""
        await self.publisher.publish_raw(exchange, routing_key, message, extra_headers, channel_kind=channel_kind)

    async def _channel(self, kind: str, deadline: float | None = None) -> aiormq.Channel:
        """The open channel of a role (`publisher`, `control`, `replier`), reopened if a channel error closed it."""
        channel: aiormq.Channel | None = getattr(self, f"_{kind}")
        if channel is not None and not channel.is_closed:
            return channel
        async with self._channel_lock:
            channel = getattr(self, f"_{kind}")
            if channel is not None and not channel.is_closed:
                return channel
            connection = await self._link.current(deadline or time.monotonic() + self.settings.publish_outage_bound)
            channel = cast(aiormq.Channel, await connection.channel(publisher_confirms=kind != "control"))
            if kind == "replier":
                await channel.basic_consume(DIRECT_REPLY_TO, self._on_reply, no_ack=True)
            setattr(self, f"_{kind}", channel)
            return channel

    # --- consuming ----------------------------------------------------------------------------------------

    async def consume(self, queue: str, handler: DeliveryHandler, *, prefetch: int) -> RabbitSubscription:
        declared = self._queues.get(queue)

        async def redeclare(channel: AbstractChannel) -> str:
            # A queue deleted under a consumer comes back with its bindings when the consumer re-attaches.
            if declared is not None:
                await self._declare_queue_on(channel, queue, *declared)
            return queue

        subscription = RabbitSubscription(self, queue, handler, prefetch=prefetch, prepare=redeclare)
        return await self._attach(subscription)

    async def watch(self, bindings: Sequence[Binding], handler: DeliveryHandler) -> RabbitSubscription:
        async def private_queue(channel: AbstractChannel) -> str:
            declared = await channel.queue_declare("", exclusive=True, auto_delete=True)
            assert declared.queue is not None  # the broker names a server-named queue in its reply
            for binding in bindings:
                exchange = self.topology.exchange(binding.exchange)
                await channel.queue_bind(declared.queue, exchange, routing_key=binding.routing_key)
            return declared.queue

        subscription = RabbitSubscription(self, "", handler, prefetch=1000, prepare=private_queue, auto_ack=True)
        return await self._attach(subscription)

    async def _attach(self, subscription: RabbitSubscription) -> RabbitSubscription:
        self._subscriptions.add(subscription)
        try:
            await subscription.attach(await self.wait_consumer_connection())
        except aiormq.exceptions.ChannelNotFoundEntity:
            self._subscriptions.discard(subscription)
            raise FailedPrecondition(f"queue {subscription.queue} does not exist") from None
        except CONNECTION_ERRORS as error:
            self._subscriptions.discard(subscription)
            raise BrokerUnavailable(f"could not consume {subscription.queue}: {type(error).__name__}") from None
        return subscription

    # --- request / reply ----------------------------------------------------------------------------------

    async def request(
        self, exchange: str, routing_key: str, message: WireMessage, *, timeout: float | None = None
    ) -> WireMessage:
        timeout = self.settings.request_timeout if timeout is None else timeout
        future: asyncio.Future[WireMessage] = asyncio.get_running_loop().create_future()
        self._replies[message.message_id] = future
        try:
            async with asyncio.timeout(timeout):
                request = WireMessage(
                    body=message.body,
                    message_id=message.message_id,
                    type=message.type,
                    headers=message.headers,
                    correlation_id=message.correlation_id,
                    timestamp=message.timestamp,
                    app_id=message.app_id,
                    content_type=message.content_type,
                    reply_to=DIRECT_REPLY_TO,
                )
                # Direct reply-to answers on the channel that published the request.
                await self.publish_raw(self.topology.exchange(exchange), routing_key, request, channel_kind="replier")
                return await future
        except TimeoutError:
            raise RequestTimedOut(f"no reply to {message.type} {message.message_id} within {timeout}s") from None
        finally:
            self._replies.pop(message.message_id, None)

    async def _on_reply(self, delivered: DeliveredMessage) -> None:
        reply = wire_of(delivered)
        future = self._replies.get(str(reply.headers.get(IN_REPLY_TO_HEADER)))
        if future is not None and not future.done():
            future.set_result(reply)

    async def reply(self, request: WireMessage, message: WireMessage) -> None:
        if not request.reply_to:
            raise InvalidArgument(f"{request.type} {request.message_id} asked for no reply")
        try:
            await self.publish_raw("", request.reply_to, message, {IN_REPLY_TO_HEADER: request.message_id})
        except Unroutable:
            # Expected: a CLI that asked and gave up (its timeout, Ctrl-C) took its reply queue with it.
            log.debug("requester is gone; reply dropped", request_id=request.message_id)

    # --- dead letters and clean-up ------------------------------------------------------------------------

    async def list_dead(self, limit: int = 1000) -> list[DeadLetter]:
        return await self.dead_letters.list(limit)

    async def redrive_dead(self, message_ids: Sequence[str] | None = None) -> int:
        return await self.dead_letters.redrive(message_ids)

    async def purge_dead(self, message_ids: Sequence[str] | None = None) -> int:
        return await self.dead_letters.purge(message_ids)

    async def count_dead(self) -> int:
        return await self.dead_letters.count()

    async def delete_namespace(self, extra_queues: Sequence[str] = ()) -> None:
        """Delete the namespace's exchanges, its fixed queues, the queues this transport declared and `extra_queues`
        (full names: what other transports or processes declared there; AMQP cannot list a namespace's queues)."""
        t = self.topology
        queues = sorted({*self._queues, *extra_queues, t.dead_queue})
        queues += [t.delay_queue(level) for level in range(len(self.settings.retry_delays))]
        try:
            async with aiormq.connect(self.settings.amqp_url) as connection:
                channel = await connection.channel()
                for queue in queues:
                    await channel.queue_delete(queue)
                for short in ("commands", "events", "retry", "dead"):
                    await channel.exchange_delete(t.exchange(short))
        except CONNECTION_ERRORS as error:
            raise StrataError(f"could not delete namespace {t.namespace}: {type(error).__name__}") from None


def _table(arguments: Mapping[str, str | int]) -> FieldTable:
    return dict(arguments.items())
