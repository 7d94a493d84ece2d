"""The consumer runtime on the in-memory transport: handling, duplicates, retries, dead letters, shutdown."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from uuid import uuid4

import pytest
import structlog
from pydantic import Field

from bus.codec import encode
from bus.facade import Bus
from bus.memory import MemoryTransport
from bus.memory_uow import MemoryUnitOfWorkFactory
from bus.ports import Binding, Handler, UnitOfWork, handler_deadline
from bus.runtime import Consumer
from schemas import Command, Envelope, Message, message
from schemas.errors import NotFound, Transient
from tests.bus_fixtures import CountPings, Ping, Pinged, PingsCounted, bus_settings, bus_test_messages
from tests.helpers import assert_eventually

pytestmark = pytest.mark.unit


class Service:
    """A consumer on the memory transport with a handler table the test fills in."""

    def __init__(self, transport: MemoryTransport, handlers: dict[type[Message], Handler]) -> None:
        self.bus = Bus(transport, messages=bus_test_messages)
        self.units = MemoryUnitOfWorkFactory(self.bus)
        self.transport = transport
        self.consumer = Consumer(
            transport, self.units, name="pinger", handlers=handlers, prefetch=8, messages=bus_test_messages
        )

    async def send(self, payload: Message) -> Envelope:
        envelope = Envelope.wrap(payload, producer="test@here")
        await self.bus.publish(envelope)
        return envelope


def dead_count_is(transport: MemoryTransport, count: int) -> Callable[[], Awaitable[bool] | bool]:
    async def condition() -> bool:
        return len(await transport.list_dead()) == count

    return condition


async def test_a_handler_runs_once_per_message_and_its_emits_are_published(memory_transport: MemoryTransport) -> None:
    seen: list[int] = []

    async def ping(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        seen.append(command.n)
        uow.emit(Envelope.wrap(Pinged(n=command.n), cause=envelope))

    service = Service(memory_transport, {Ping: ping})
    await memory_transport.declare_queue("audit", [Binding("events", "bustest.pinged")])
    await service.consumer.start()
    sent = await service.send(Ping(n=1))
    await assert_eventually(lambda: service.units.emitted_of_type("bustest.pinged"), what="the event is emitted")
    event = service.units.emitted_of_type("bustest.pinged")[0]
    assert seen == [1]
    assert event.correlation_id == sent.correlation_id
    assert event.causation_id == sent.message_id


async def test_a_duplicate_delivery_is_acked_without_running_the_handler(memory_transport: MemoryTransport) -> None:
    seen: list[int] = []

    async def ping(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        seen.append(command.n)

    service = Service(memory_transport, {Ping: ping})
    await service.consumer.start()
    envelope = Envelope.wrap(Ping(n=5))
    for _ in range(2):
        await service.bus.publish(envelope)
    await service.send(Ping(n=6))
    await assert_eventually(lambda: 6 in seen)
    await service.consumer.stop()
    assert sorted(seen) == [5, 6]
    assert await memory_transport.list_dead() == []


async def test_a_transient_error_retries_then_succeeds(memory_transport: MemoryTransport) -> None:
    attempts: list[int] = []

    async def flaky(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        attempts.append(command.n)
        if len(attempts) < 3:
            raise Transient("storage busy")

    service = Service(memory_transport, {Ping: flaky})
    await service.consumer.start()
    await service.send(Ping(n=1))
    await assert_eventually(lambda: len(attempts) == 3)
    await service.consumer.stop()
    assert await memory_transport.list_dead() == []


async def test_a_message_that_always_fails_ends_dead_after_every_level(memory_transport: MemoryTransport) -> None:
    calls = 0

    async def always_busy(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        nonlocal calls
        calls += 1
        raise Transient("storage busy")

    service = Service(memory_transport, {Ping: always_busy})
    await service.consumer.start()
    sent = await service.send(Ping(n=1))
    await assert_eventually(dead_count_is(memory_transport, 1), what="the message is dead-lettered")
    [letter] = await memory_transport.list_dead()
    levels = len(memory_transport.retry_delays)
    assert calls == levels + 1
    assert letter.attempts == levels + 1
    assert letter.message.message_id == str(sent.message_id)
    assert letter.error_class == "Transient"
    assert letter.reason == f"gave up after {levels + 1} attempts: storage busy"
    assert letter.origin_queue == service.consumer.queue


@pytest.mark.parametrize(
    ("mutate", "error_class"),
    [
        (lambda w: replace(w, body=b"{not json"), "MalformedMessage"),
        (lambda w: replace(w, type="bustest.nobody"), "UnknownMessageType"),
        (lambda w: replace(w, headers={**w.headers, "version": 9}), "UnknownMessageType"),
        (lambda w: replace(w, body=b'{"n": -1, "text": "hunter2"}'), "SchemaViolation"),
        (lambda w: replace(w, headers={}), "MalformedMessage"),
    ],
    ids=["malformed-json", "unknown-type", "unknown-version", "schema-violation", "no-version"],
)
async def test_a_bad_message_is_dead_at_once_and_the_consumer_keeps_going(
    memory_transport: MemoryTransport, mutate: Callable[..., object], error_class: str
) -> None:
    seen: list[int] = []

    async def ping(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        seen.append(command.n)

    service = Service(memory_transport, {Ping: ping})
    await service.consumer.start()
    bad = mutate(encode(Envelope.wrap(Ping(n=1))))
    await memory_transport.publish("commands", "bustest.ping", bad)  # type: ignore[arg-type]
    await service.send(Ping(n=2))
    await assert_eventually(lambda: seen == [2], what="the good message after the bad one is handled")
    await assert_eventually(dead_count_is(memory_transport, 1))
    [letter] = await memory_transport.list_dead()
    assert letter.error_class == error_class
    assert letter.attempts == 1
    assert "hunter2" not in letter.reason


async def test_a_permanent_error_is_dead_at_once(memory_transport: MemoryTransport) -> None:
    calls = 0

    async def missing(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        nonlocal calls
        calls += 1
        raise NotFound(f"volume {uuid4()} does not exist")

    service = Service(memory_transport, {Ping: missing})
    await service.consumer.start()
    await service.send(Ping(n=1))
    await assert_eventually(dead_count_is(memory_transport, 1))
    [letter] = await memory_transport.list_dead()
    assert calls == 1
    assert letter.error_class == "NotFound"
    assert letter.reason.startswith("volume ")


async def test_a_bug_in_a_handler_is_dead_lettered_not_fatal(memory_transport: MemoryTransport) -> None:
    async def buggy(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        if command.n == 1:
            raise ZeroDivisionError("division by zero")

    service = Service(memory_transport, {Ping: buggy})
    await service.consumer.start()
    await service.send(Ping(n=1))
    await service.send(Ping(n=2))
    await assert_eventually(dead_count_is(memory_transport, 1))
    [letter] = await memory_transport.list_dead()
    assert letter.error_class == "ZeroDivisionError"


async def test_a_request_handler_replies(memory_transport: MemoryTransport) -> None:
    async def count(query: CountPings, envelope: Envelope, uow: UnitOfWork) -> PingsCounted:
        return PingsCounted(count=3)

    service = Service(memory_transport, {CountPings: count})
    await service.consumer.start()
    question = Envelope.wrap(CountPings())
    answer = await service.bus.request(question, timeout=5)
    assert answer.payload == PingsCounted(count=3)
    assert answer.causation_id == question.message_id


async def test_stop_lets_the_message_in_flight_finish(memory_transport: MemoryTransport) -> None:
    started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        started.set()
        await release.wait()
        finished.set()

    service = Service(memory_transport, {Ping: slow})
    await service.consumer.start()
    await service.send(Ping(n=1))
    await asyncio.wait_for(started.wait(), 5)
    stopping = asyncio.create_task(service.consumer.stop())
    await assert_eventually(lambda: not memory_transport._queues[service.consumer.queue].consumers)
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, 5)
    assert finished.is_set()
    assert not memory_transport._queues[service.consumer.queue].ready, "the finished message was acked, not requeued"


async def test_the_handler_logs_with_the_message_ids_bound(memory_transport: MemoryTransport) -> None:
    bound: list[dict[str, object]] = []

    async def ping(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        bound.append(structlog.contextvars.get_contextvars())

    service = Service(memory_transport, {Ping: ping})
    await service.consumer.start()
    sent = await service.send(Ping(n=1))
    await assert_eventually(lambda: bound)
    assert bound[0]["message_id"] == str(sent.message_id)
    assert bound[0]["correlation_id"] == str(sent.correlation_id)
    assert bound[0]["type"] == "bustest.ping"


async def test_a_handler_that_hangs_is_cancelled_retried_and_dead_lettered(memory_transport: MemoryTransport) -> None:
    calls = 0
    cancelled = 0

    async def hangs(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        nonlocal calls, cancelled
        calls += 1
        uow.emit(Envelope.wrap(Pinged(n=command.n), cause=envelope))
        try:
            await asyncio.Event().wait()  # a call that never answers
        except asyncio.CancelledError:
            cancelled += 1
            raise

    service = Service(memory_transport, {Ping: hangs})
    service.consumer.handler_timeout = 0.05
    await service.consumer.start()
    sent = await service.send(Ping(n=1))
    await assert_eventually(dead_count_is(memory_transport, 1), what="the hanging message is dead-lettered")
    [letter] = await memory_transport.list_dead()
    levels = len(memory_transport.retry_delays)
    assert (calls, cancelled) == (levels + 1, levels + 1)
    assert letter.message.message_id == str(sent.message_id)
    assert letter.error_class == "HandlerTimedOut"
    assert "within its deadline" in letter.reason
    assert service.units.emitted_of_type("bustest.pinged") == []  # nothing a cancelled handler emitted was kept


@message("bustest.copy_for_hours")
class CopyForHours(Command):
    """A command that says how long its work may take."""

    deadline_seconds: float = Field(gt=0, description="Seconds the work may take.")


async def test_a_handler_or_a_message_may_ask_for_a_longer_deadline() -> None:
    @handler_deadline(3600)
    async def long_by_nature(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        """A handler whose work takes long."""

    async def plain(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        """A handler with the default deadline."""

    transport = MemoryTransport(bus_settings("deadlines").model_copy(update={"handler_timeout": 30.0}))
    consumer = Consumer(
        transport, MemoryUnitOfWorkFactory(Bus(transport)), name="pinger", handlers={Ping: plain}
    )  # the default deadline is the transport's setting (STRATA_HANDLER_TIMEOUT)
    envelope = Envelope.wrap(Ping(n=1))
    assert consumer.deadline(plain, envelope) == 30
    assert consumer.deadline(long_by_nature, envelope) == 3600
    assert consumer.deadline(plain, Envelope.wrap(CopyForHours(deadline_seconds=7200))) == 7200
    with pytest.raises(ValueError, match="positive"):
        handler_deadline(0)
