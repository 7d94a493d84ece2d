"""Failures on the real RabbitMQ: retries through the TTL delay queues, dead letters, unroutable, request timeout."""

from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from bus.codec import encode
from bus.errors import RequestTimedOut, Unroutable
from bus.facade import Bus
from bus.memory_uow import MemoryUnitOfWorkFactory
from bus.ports import Handler, UnitOfWork
from bus.rabbit import RabbitTransport
from bus.runtime import Consumer
from schemas import Envelope, Message
from schemas.errors import Transient
from tests.bus_fixtures import CountPings, Ping, PingsCounted, bus_test_messages
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration


async def start_service(transport: RabbitTransport, handlers: dict[type[Message], Handler]) -> tuple[Bus, Consumer]:
    bus = Bus(transport, messages=bus_test_messages)
    consumer = Consumer(
        transport,
        MemoryUnitOfWorkFactory(bus),
        name="pinger",
        handlers=handlers,
        prefetch=8,
        messages=bus_test_messages,
    )
    await consumer.start()
    return bus, consumer


def dead_count_is(transport: RabbitTransport, count: int) -> Callable[[], Awaitable[bool] | bool]:
    async def condition() -> bool:
        return len(await transport.list_dead()) == count

    return condition


async def test_a_message_that_always_fails_is_dead_after_the_configured_attempts(
    rabbit_transport: RabbitTransport,
) -> None:
    calls: list[int] = []

    async def always_busy(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        calls.append(command.n)
        raise Transient("pool is busy")

    bus, consumer = await start_service(rabbit_transport, {Ping: always_busy})
    sent = Envelope.wrap(Ping(n=1))
    await bus.publish(sent)
    await assert_eventually(dead_count_is(rabbit_transport, 1), what="the message reaches the dead letters")
    await consumer.stop()
    [letter] = await rabbit_transport.list_dead()
    attempts = len(rabbit_transport.retry_delays) + 1
    assert len(calls) == attempts
    assert letter.message.message_id == str(sent.message_id)
    assert letter.attempts == attempts
    assert letter.error_class == "Transient"
    assert letter.reason == f"gave up after {attempts} attempts: pool is busy"
    assert letter.origin_queue == consumer.queue


async def test_malformed_unknown_and_invalid_messages_are_dead_at_once_and_the_consumer_goes_on(
    rabbit_transport: RabbitTransport,
) -> None:
    handled: list[int] = []

    async def ping(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        handled.append(command.n)

    bus, consumer = await start_service(rabbit_transport, {Ping: ping})
    good = encode(Envelope.wrap(Ping(n=0)))
    bad = {
        "MalformedMessage": replace(good, message_id="a", body=b"{oops"),
        "UnknownMessageType": replace(good, message_id="b", headers={**good.headers, "version": 7}),
        "SchemaViolation": replace(good, message_id="c", body=b'{"n": "seven"}'),
    }
    for message in bad.values():
        await rabbit_transport.publish("commands", "bustest.ping", message)
    await bus.publish(Envelope.wrap(Ping(n=1)))
    await assert_eventually(lambda: handled == [1], what="the good message is handled after the bad ones")
    await assert_eventually(dead_count_is(rabbit_transport, 3), what="three dead letters")
    letters = {letter.message.message_id: letter for letter in await rabbit_transport.list_dead()}
    for error_class, message in bad.items():
        letter = letters[message.message_id]
        assert letter.error_class == error_class
        assert letter.attempts == 1
        assert letter.origin_queue == consumer.queue
        assert letter.reason
    await consumer.stop()


async def test_an_unroutable_publish_raises(rabbit_transport: RabbitTransport) -> None:
    bus = Bus(rabbit_transport, messages=bus_test_messages)
    with pytest.raises(Unroutable):
        await bus.publish(Envelope.wrap(Ping(n=1)))


async def test_request_reply_answers_and_times_out(rabbit_transport: RabbitTransport) -> None:
    async def count(query: CountPings, envelope: Envelope, uow: UnitOfWork) -> PingsCounted:
        return PingsCounted(count=12)

    bus, consumer = await start_service(rabbit_transport, {CountPings: count})
    question = Envelope.wrap(CountPings())
    answer = await bus.request(question, timeout=5)
    assert answer.payload == PingsCounted(count=12)
    assert answer.causation_id == question.message_id
    await consumer.stop()
    with pytest.raises(RequestTimedOut):
        await bus.request(Envelope.wrap(CountPings()), timeout=0.3)
