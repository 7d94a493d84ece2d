"""MemoryTransport: the bus in one process, with the broker's semantics (for the embedded demo and fast tests).

It models what the code above it relies on: topic routing, unroutable publishes raising, per-consumer prefetch,
acks, redelivery (flagged) of what a cancelled consumer left unsettled, a delivery limit, delay levels that come
back to the origin queue, dead letters, and request/reply.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from uuid import uuid4

from bus.dead_letters import dead_letter_of
from bus.errors import RequestTimedOut, Unroutable
from bus.ports import (
    Binding,
    DeadLetter,
    DeliveryHandler,
    HandlingObservers,
    HeaderValue,
    QueueKind,
    WireMessage,
)
from bus.settings import BusSettings
from bus.topology import (
    ATTEMPTS_HEADER,
    DEATH_REASON_HEADER,
    ERROR_CLASS_HEADER,
    IN_REPLY_TO_HEADER,
    ORIGIN_QUEUE_HEADER,
    Topology,
    topic_matches,
)
from schemas.errors import FailedPrecondition, InvalidArgument, NotFound, StrataError

log = logging.getLogger(__name__)
_DEAD_HEADERS = (ATTEMPTS_HEADER, DEATH_REASON_HEADER, ERROR_CLASS_HEADER, ORIGIN_QUEUE_HEADER)


@dataclass(slots=True)
class _Entry:
    message: WireMessage
    redelivered: bool = False
    deliveries: int = 0


@dataclass(eq=False)
class _Queue:
    name: str
    kind: QueueKind
    bindings: set[Binding] = field(default_factory=set)
    ready: deque[_Entry] = field(default_factory=deque)
    consumers: list["_Consumer"] = field(default_factory=list)
    auto_ack: bool = False
    next_consumer: int = 0


class _MemoryDelivery:
    """One delivery; settling it twice is a no-op, like a delivery tag on a closed channel."""

    __slots__ = ("_consumer", "_entry", "settled")

    def __init__(self, consumer: "_Consumer", entry: _Entry) -> None:
        self._consumer = consumer
        self._entry = entry
        self.settled = consumer.queue.auto_ack

    @property
    def message(self) -> WireMessage:
        return self._entry.message

    @property
    def queue(self) -> str:
        return self._consumer.queue.name

    @property
    def redelivered(self) -> bool:
        return self._entry.redelivered

    def _settle(self) -> bool:
        if self.settled:
            return False
        self.settled = True
        self._consumer.unsettled.pop(self, None)
        self._consumer.transport._dispatch(self._consumer.queue)
        return True

    async def ack(self) -> None:
        self._settle()

    async def requeue(self) -> None:
        if self._settle():
            self._consumer.transport._return(self._consumer.queue, self._entry)

    async def retry_later(self, level: int, headers: Mapping[str, HeaderValue]) -> None:
        transport = self._consumer.transport
        delay = transport.retry_delays[level]  # an unknown level raises before anything is settled
        if not self._settle():
            return
        message = replace(self._entry.message, headers={**self._entry.message.headers, **headers})
        transport._later(delay, self._consumer.queue, message)

    async def dead_letter(self, headers: Mapping[str, HeaderValue]) -> None:
        if self._settle():
            self._consumer.transport._dead(self._entry.message, self.queue, headers)


@dataclass(eq=False)
class _Consumer:
    transport: "MemoryTransport"
    queue: _Queue
    handler: DeliveryHandler
    prefetch: int
    unsettled: dict[_MemoryDelivery, None] = field(default_factory=dict)  # in delivery order
    tasks: set["asyncio.Task[None]"] = field(default_factory=set)
    cancelled: bool = False

    async def cancel(self) -> None:
        """Detach, let the handlers in flight finish, and return what they left unsettled."""
        if self.cancelled:
            return
        self.cancelled = True
        if self in self.queue.consumers:
            self.queue.consumers.remove(self)
        in_flight = self.tasks - {asyncio.current_task()}  # a handler may stop its own consumer
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
        for delivery in reversed(list(self.unsettled)):  # each goes back to the head: the earliest ends up first
            delivery.settled = True
            self.transport._return(self.queue, delivery._entry)
        self.unsettled.clear()
        if self.queue.auto_ack:
            self.transport._queues.pop(self.queue.name, None)
        self.transport._dispatch(self.queue)


class MemoryTransport:
    """A broker in memory. Create it with the namespace's settings; `start` declares the fixed topology."""

    def __init__(self, settings: BusSettings | None = None) -> None:
        self.settings = settings or BusSettings()
        self.topology = Topology(self.settings.namespace)
        self.handling = HandlingObservers()
        self._queues: dict[str, _Queue] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._replies: dict[str, asyncio.Future[WireMessage]] = {}
        self._consumers: set[_Consumer] = set()
        self._started = False

    @property
    def namespace(self) -> str:
        return self.topology.namespace

    @property
    def retry_delays(self) -> Sequence[float]:
        return self.settings.retry_delays

    @property
    def handler_timeout(self) -> float:
        return self.settings.handler_timeout

    async def start(self) -> None:
        self._queues.setdefault(self.topology.dead_queue, _Queue(self.topology.dead_queue, QueueKind.QUORUM))
        self._started = True

    async def close(self) -> None:
        for consumer in list(self._consumers):
            await consumer.cancel()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._started = False

    async def declare_queue(self, name: str, bindings: Sequence[Binding], *, kind: QueueKind = QueueKind.QUORUM) -> str:
        full = self.topology.queue(name)
        for binding in bindings:
            if binding.exchange not in ("commands", "events"):
                raise InvalidArgument(f"queues bind to 'commands' or 'events', not {binding.exchange!r}")
        queue = self._queues.get(full)
        if queue is None:
            queue = self._queues[full] = _Queue(full, kind)
        elif queue.kind is not kind:
            raise FailedPrecondition(f"queue {full} exists as a {queue.kind} queue, not {kind}")
        queue.bindings.update(bindings)
        return full

    async def consumers(self, name: str) -> int | None:
        queue = self._queues.get(self.topology.queue(name))
        return None if queue is None else len(queue.consumers)

    async def publish(self, exchange: str, routing_key: str, message: WireMessage) -> None:
        self._require_started()
        self._route(exchange, routing_key, message)
        await asyncio.sleep(0)  # a publish yields like a confirmed one would

    async def publish_many(self, exchange: str, messages: Sequence[tuple[str, WireMessage]]) -> None:
        self._require_started()
        for routing_key, message in messages:
            self._route(exchange, routing_key, message)
        await asyncio.sleep(0)

    async def publish_each(self, items: Sequence[tuple[str, str, WireMessage]]) -> list[BaseException | None]:
        self._require_started()
        outcomes: list[BaseException | None] = []
        for exchange, routing_key, message in items:
            try:
                self._route(exchange, routing_key, message)
            except StrataError as error:
                outcomes.append(error)
            else:
                outcomes.append(None)
        await asyncio.sleep(0)
        return outcomes

    async def consume(self, queue: str, handler: DeliveryHandler, *, prefetch: int) -> _Consumer:
        self._require_started()
        target = self._queues.get(queue)
        if target is None:
            raise NotFound(f"queue {queue} does not exist", field="queue")
        consumer = _Consumer(self, target, handler, max(1, prefetch))
        target.consumers.append(consumer)
        self._consumers.add(consumer)
        self._dispatch(target)
        return consumer

    async def watch(self, bindings: Sequence[Binding], handler: DeliveryHandler) -> _Consumer:
        self._require_started()
        name = f"{self.namespace}.watch.{uuid4().hex}"
        queue = self._queues[name] = _Queue(name, QueueKind.CLASSIC, set(bindings), auto_ack=True)
        consumer = _Consumer(self, queue, handler, prefetch=1000)
        queue.consumers.append(consumer)
        self._consumers.add(consumer)
        return consumer

    async def request(
        self, exchange: str, routing_key: str, message: WireMessage, *, timeout: float | None = None
    ) -> WireMessage:
        timeout = self.settings.request_timeout if timeout is None else timeout
        reply_to = f"memory.reply.{uuid4().hex}"
        future: asyncio.Future[WireMessage] = asyncio.get_running_loop().create_future()
        self._replies[reply_to] = future
        try:
            await self.publish(exchange, routing_key, replace(message, reply_to=reply_to))
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestTimedOut(f"no reply to {message.type} within {timeout}s") from None
        finally:
            self._replies.pop(reply_to, None)

    async def reply(self, request: WireMessage, message: WireMessage) -> None:
        future = self._replies.get(request.reply_to or "")
        if future is None or future.done():
            log.info("requester of %s is gone; reply dropped", request.message_id)
            return
        future.set_result(replace(message, headers={**message.headers, IN_REPLY_TO_HEADER: request.message_id}))

    # --- dead letters -------------------------------------------------------------------------------------

    async def list_dead(self, limit: int = 1000) -> list[DeadLetter]:
        queue = self._queues.get(self.topology.dead_queue)
        entries = list(queue.ready)[:limit] if queue else []
        return [dead_letter_of(entry.message) for entry in entries]

    async def redrive_dead(self, message_ids: Sequence[str] | None = None) -> int:
        moved = 0
        for entry in self._take_dead(message_ids):
            letter = dead_letter_of(entry.message)
            origin = self._queues.get(letter.origin_queue)
            if origin is None:
                self._queues[self.topology.dead_queue].ready.append(entry)
                raise NotFound(f"origin queue {letter.origin_queue!r} of {entry.message.message_id} does not exist")
            headers = {k: v for k, v in entry.message.headers.items() if k not in _DEAD_HEADERS}
            self._enqueue(origin, replace(entry.message, headers=headers))
            moved += 1
        return moved

    async def purge_dead(self, message_ids: Sequence[str] | None = None) -> int:
        return len(self._take_dead(message_ids))

    async def count_dead(self) -> int:
        queue = self._queues.get(self.topology.dead_queue)
        return len(queue.ready) if queue else 0

    def _take_dead(self, message_ids: Sequence[str] | None) -> list[_Entry]:
        queue = self._queues.get(self.topology.dead_queue)
        if queue is None:
            return []
        wanted = None if message_ids is None else set(message_ids)
        taken = [entry for entry in queue.ready if wanted is None or entry.message.message_id in wanted]
        queue.ready = deque(entry for entry in queue.ready if entry not in taken)
        return taken

    # --- the broker's inside ------------------------------------------------------------------------------

    def _require_started(self) -> None:
        if not self._started:
            raise FailedPrecondition("the memory transport is not started (call start())")

    def _route(self, exchange: str, routing_key: str, message: WireMessage) -> None:
        self.topology.exchange(exchange)
        if exchange == "dead":
            self._dead(message, "", {})
            return
        targets = [
            queue
            for queue in self._queues.values()
            if any(b.exchange == exchange and topic_matches(b.routing_key, routing_key) for b in queue.bindings)
        ]
        if not targets:
            raise Unroutable(f"no queue is bound to {self.topology.exchange(exchange)} for {routing_key!r}")
        for queue in targets:
            self._enqueue(queue, message)

    def _enqueue(self, queue: _Queue, message: WireMessage) -> None:
        queue.ready.append(_Entry(message))
        self._dispatch(queue)

    def _return(self, queue: _Queue, entry: _Entry) -> None:
        """Put an unsettled message back at the head, flagged redelivered, or dead-letter it past the limit."""
        if queue.name not in self._queues:
            return
        if queue.kind is QueueKind.QUORUM and entry.deliveries > self.settings.delivery_limit:
            self._dead(entry.message, queue.name, {DEATH_REASON_HEADER: "delivery_limit"})  # RabbitMQ's word
            return
        entry.redelivered = True
        queue.ready.appendleft(entry)
        self._dispatch(queue)

    def _later(self, delay: float, queue: _Queue, message: WireMessage) -> None:
        loop = asyncio.get_running_loop()

        def come_back() -> None:
            self._timers.discard(timer)
            if queue.name in self._queues:
                self._enqueue(queue, message)

        timer = loop.call_later(delay, come_back)
        self._timers.add(timer)

    def _dead(self, message: WireMessage, origin: str, headers: Mapping[str, HeaderValue]) -> None:
        dead = self._queues.setdefault(self.topology.dead_queue, _Queue(self.topology.dead_queue, QueueKind.QUORUM))
        extra: dict[str, HeaderValue] = {ORIGIN_QUEUE_HEADER: origin} if origin else {}
        self._enqueue(dead, replace(message, headers={**message.headers, **extra, **headers}))

    def _dispatch(self, queue: _Queue) -> None:
        """Hand ready messages to consumers with room under their prefetch, round robin."""
        while queue.ready and queue.consumers:
            count = len(queue.consumers)
            for offset in range(count):
                consumer = queue.consumers[(queue.next_consumer + offset) % count]
                if len(consumer.unsettled) < consumer.prefetch:
                    queue.next_consumer = (queue.next_consumer + offset + 1) % count
                    break
            else:
                return
            entry = queue.ready.popleft()
            entry.deliveries += 1
            delivery = _MemoryDelivery(consumer, entry)
            if not delivery.settled:
                consumer.unsettled[delivery] = None
            task = asyncio.get_running_loop().create_task(self._run(consumer, delivery))
            consumer.tasks.add(task)
            task.add_done_callback(consumer.tasks.discard)

    async def _run(self, consumer: _Consumer, delivery: _MemoryDelivery) -> None:
        try:
            await consumer.handler(delivery)
        except Exception:
            # A transport-level handler should settle every delivery itself; one that raises gets it back later.
            log.exception("handler of %s failed; message %s requeued", delivery.queue, delivery.message.message_id)
            await delivery.requeue()

    def delete_namespace(self) -> None:
        """Forget every queue and pending delay (the test fixtures' clean-up)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._queues.clear()
