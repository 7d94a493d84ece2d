"""The bridge's link to CloudStack's event bus (aio-pika): its own durable queue on CloudStack's exchange, and the
answers published back there.

The queue `<ns>.bridge.cloudstack` (quorum, durable) is bound to `*.ActionEvent.#` and `*.ResourceStateEvent.#`, so
what CloudStack publishes while the bridge is down waits for it. Deliveries are handed to a few workers, each taking
what is at hand as one batch (one transaction: see `inbound.py`); a message is acked only after its batch committed,
the acks of the channel coalesced (`bus.rabbit_acks`: one `basic.ack(multiple=True)` for a run of settled deliveries).
A malformed one goes to strata's dead letters (`<ns>.dead`) with the reason, its routing key and the origin queue (so
`strata dlq redrive` brings it back here); one that strata cannot take now (a service not answering) is given back
after a pause, and dead-lettered after `delivery_attempts`. The link reconnects by itself (a loop of its own rather
than aio-pika's robust connection, which loses consumers: aio-pika #231, #594).
"""

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange
from aiormq.abc import AbstractChannel as RawChannel
from aiormq.abc import DeliveredMessage

from bus.ports import HeaderValue, Transport, WireMessage
from bus.rabbit_acks import AckBatcher
from bus.topology import ATTEMPTS_HEADER, DEATH_REASON_HEADER, ERROR_CLASS_HEADER, ORIGIN_QUEUE_HEADER
from schemas import Transient
from schemas.cloudstack import MalformedEvent
from services.bridge.metrics import BridgeMetrics

log = structlog.get_logger(__name__)
PATTERNS = ("*.ActionEvent.#", "*.ResourceStateEvent.#")
ROUTING_KEY_HEADER = "cloudstack-routing-key"
WORKERS = 2  # batches in flight at once: one fills while the other commits (each holds a database connection)
GATHER_SECONDS = 0.005  # a batch waits this long at most for more deliveries once it has one
_DELIVERY_COUNT = "x-delivery-count"  # set by a quorum queue on each redelivery
TakeBatch = Callable[[Sequence[tuple[str, bytes]]], Awaitable[list[str | Exception]]]
RecordDead = Callable[[str, str], Awaitable[None]]  # (routing key, reason)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the link keeps of a delivery from CloudStack's exchange (or of a dead letter re-driven to its queue)."""

    body: bytes
    routing_key: str
    exchange: str
    headers: Mapping[str, object]
    content_type: str | None
    tag: int

    @classmethod
    def of(cls, message: DeliveredMessage) -> "Delivery":
        """From aiormq's message."""
        properties = message.header.properties
        assert message.delivery_tag is not None  # a consumer without no_ack: every delivery has its tag
        return cls(
            message.body,
            message.routing_key or "",
            message.exchange or "",
            properties.headers or {},
            properties.content_type,
            message.delivery_tag,
        )

    @property
    def cloudstack_key(self) -> str:
        """CloudStack's routing key; for a dead letter re-driven here (`strata dlq redrive` sends it to this queue by
        the default exchange, keyed by the queue's name), the one it arrived with, kept in its headers."""
        kept = self.headers.get(ROUTING_KEY_HEADER)
        if not self.exchange and isinstance(kept, str):
            return kept
        return self.routing_key


class CloudStackLink:
    """Consumes CloudStack's exchange through the bridge's queue and publishes answers on it."""

    def __init__(  # the link's settings, each named
        self,
        url: str,
        *,
        exchange: str,
        queue: str,
        prefetch: int,
        attempts: int,
        reconnect_seconds: float,
        take_batch: TakeBatch,
        record_dead: RecordDead,
        dead_letters: Transport,
        metrics: BridgeMetrics,
    ) -> None:
        self.url, self.exchange_name, self.queue_name = url, exchange, queue
        self.prefetch, self.attempts, self.reconnect_seconds = prefetch, attempts, reconnect_seconds
        self.take_batch, self.record_dead, self.dead_letters, self.metrics = (
            take_batch,
            record_dead,
            dead_letters,
            metrics,
        )
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._pending: asyncio.Queue[tuple[Delivery, AckBatcher]] = asyncio.Queue()
        self._acks: AckBatcher | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._busy = 0
        self._later: set[asyncio.Task[None]] = set()
        self._answers: AbstractExchange | None = None
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._consumer: tuple[RawChannel, str] | None = None

    async def start(self) -> None:
        """Connect (waiting up to a few seconds for the first connection, then going on in the background)."""
        self._workers = [asyncio.create_task(self._work(), name=f"cloudstack-worker-{i}") for i in range(WORKERS)]
        self._task = asyncio.create_task(self._run(), name="cloudstack-link")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 10.0)

    async def stop(self) -> None:
        """Stop consuming, let the batches in flight finish (for up to 30 s), and disconnect."""
        self._stopping = True
        if self._consumer is not None:
            raw, tag = self._consumer
            with contextlib.suppress(Exception):  # a connection already gone cancels nothing
                await raw.basic_cancel(tag)
        for _ in range(300):
            if self._pending.empty() and self._busy == 0:
                break
            await asyncio.sleep(0.1)  # a drain with a deadline: what is left unacked is redelivered
        if self._acks is not None:
            await self._acks.drain()
        for task in [*self._workers, *self._later]:
            task.cancel()
        if self._task is not None:
            self._task.cancel()
        for task in [*self._workers, *self._later, *([self._task] if self._task else [])]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected.clear()
        self.metrics.connected.set(0)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                connection = await aio_pika.connect(self.url, timeout=10)
                closed = asyncio.Event()
                connection.close_callbacks.add(_setter(closed))
                async with connection:
                    self._connection = connection
                    await self._attach(connection)
                    self.connected.set()
                    self.metrics.connected.set(1)
                    log.info("consuming CloudStack's exchange", exchange=self.exchange_name, queue=self.queue_name)
                    await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any broker or network failure: reconnect after a pause
                log.warning("CloudStack's broker link failed", error_class=type(error).__name__, error=str(error))
            finally:
                self._connection, self._answers, self._consumer = None, None, None
                self.connected.clear()
                self.metrics.connected.set(0)
            await asyncio.sleep(self.reconnect_seconds)

    async def _attach(self, connection: aio_pika.abc.AbstractConnection) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(self.queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        for pattern in PATTERNS:
            await queue.bind(exchange, pattern)
        publisher: AbstractChannel = await connection.channel(publisher_confirms=True)
        self._answers = await publisher.get_exchange(self.exchange_name)
        # Deliveries are taken from aiormq's channel itself: aio-pika's message object and task per delivery cost
        # more than the rest of the bridge's intake does for a message.
        raw = await channel.get_underlay_channel()
        acks = self._acks = AckBatcher(raw)

        async def delivered(message: DeliveredMessage) -> None:
            delivery = Delivery.of(message)
            acks.delivered(delivery.tag)
            self._pending.put_nowait((delivery, acks))

        consuming = await raw.basic_consume(queue.name, delivered)
        assert consuming.consumer_tag is not None  # the broker names the consumer it made
        self._consumer = (raw, consuming.consumer_tag)

    async def _work(self) -> None:
        batch_max = max(1, self.prefetch // WORKERS)
        while True:
            batch = await self._gather(batch_max)
            self._busy += 1
            try:
                await self._handle(batch)
            except Exception as error:  # a settle on a channel that died: the broker redelivers those
                log.warning("CloudStack messages left to redelivery", error_class=type(error).__name__)
            finally:
                self._busy -= 1

    async def _gather(self, batch_max: int) -> list[tuple[Delivery, AckBatcher]]:
        """A batch: the first delivery, then those that arrive within GATHER_SECONDS, up to `batch_max` (a commit
        per batch costs the same whatever its size: a backlog is taken in few, large batches)."""
        batch = [await self._pending.get()]
        deadline = asyncio.get_running_loop().time() + GATHER_SECONDS
        while len(batch) < batch_max:
            if not self._pending.empty():
                batch.append(self._pending.get_nowait())
                continue
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._pending.get(), left))
            except TimeoutError:
                break
        return batch

    async def _handle(self, batch: list[tuple[Delivery, AckBatcher]]) -> None:
        try:
            outcomes = await self.take_batch([(message.cloudstack_key, message.body) for message, _ in batch])
        except Exception as error:  # the database failed: the whole batch is taken again
            for message, acks in batch:
                await self._again(message, acks, error)
            return
        for (message, acks), outcome in zip(batch, outcomes, strict=True):
            key = message.cloudstack_key
            if isinstance(outcome, MalformedEvent):
                reason = f"malformed CloudStack event, field {outcome.field}: {outcome.reason}"
                await self._dead_letter(message, acks, key, reason, "MalformedEvent")
            elif isinstance(outcome, Exception):
                await self._again(message, acks, outcome)
            else:
                acks.ack(message.tag)
        for acks in {id(acks): acks for _, acks in batch}.values():
            acks.flush()  # the batch is settled: its acks go now, for the broker to deliver the next ones at once

    async def _again(self, message: Delivery, acks: AckBatcher, error: Exception) -> None:
        """Give a message back after a pause, or dead-letter it once it failed `attempts` times."""
        key = message.cloudstack_key
        reason = error.message if isinstance(error, Transient) else f"{type(error).__name__}: {error}"
        delivered = message.headers.get(_DELIVERY_COUNT)
        attempts = (delivered if isinstance(delivered, int) else 0) + 1
        if attempts >= self.attempts:
            await self._dead_letter(message, acks, key, f"failed {attempts} times: {reason}", type(error).__name__)
            return
        log.warning("a CloudStack event will be taken again", routing_key=key[:200], reason=reason[:500])
        task = asyncio.create_task(self._nack_later(message, acks, min(5.0, 0.2 * 2**attempts)))
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _nack_later(self, message: Delivery, acks: AckBatcher, delay: float) -> None:
        await asyncio.sleep(delay)
        with contextlib.suppress(Exception):  # a channel gone meanwhile redelivers it anyway
            await acks.reject(message.tag)  # back to the queue (basic.reject, requeued)

    async def _dead_letter(  # the message, its channel's acks, and why
        self, message: Delivery, acks: AckBatcher, key: str, reason: str, error_class: str
    ) -> None:
        headers: dict[str, HeaderValue] = {
            DEATH_REASON_HEADER: reason[:1000],
            ERROR_CLASS_HEADER: error_class,
            ORIGIN_QUEUE_HEADER: self.queue_name,
            ATTEMPTS_HEADER: 1,
            ROUTING_KEY_HEADER: key[:255],
        }
        wire = WireMessage(
            body=message.body,
            message_id=str(uuid.uuid4()),
            type="cloudstack.event",
            headers=headers,
            content_type=message.content_type or "text/plain",
        )
        await self.dead_letters.publish("dead", "", wire)
        await self.record_dead(key, reason)
        acks.ack(message.tag)
        log.warning("a CloudStack message was dead-lettered", routing_key=key[:200], reason=reason[:500])

    async def publish(self, routing_key: str, body: bytes) -> None:
        """Publish an answer on CloudStack's exchange, persistent, confirmed; Transient while disconnected."""
        if self._answers is None:
            raise Transient("not connected to CloudStack's broker")
        await self._answers.publish(
            aio_pika.Message(body, content_type="text/plain", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=routing_key,
        )


def _setter(event: asyncio.Event) -> Callable[..., None]:
    """A close callback that sets `event` (aio-pika passes the connection and the reason)."""

    def closed(*_: object) -> None:
        event.set()

    return closed
