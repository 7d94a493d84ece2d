"""The Transport contract: every adapter (memory, RabbitMQ) must pass these, inherited unchanged."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from bus.errors import RequestTimedOut, Unroutable
from bus.memory import MemoryTransport
from bus.ports import Binding, DeadLetters, Delivery, QueueKind, Transport, WireMessage
from bus.rabbit import RabbitTransport
from bus.topology import ATTEMPTS_HEADER, DEATH_REASON_HEADER, ORIGIN_QUEUE_HEADER
from schemas.errors import FailedPrecondition, InvalidArgument
from tests.helpers import assert_eventually

pytestmark = pytest.mark.contract


def wire(n: int = 0, *, type_name: str = "bustest.ping", **headers: str | int) -> WireMessage:
    return WireMessage(
        body=f'{{"n": {n}}}'.encode(),
        message_id=str(uuid4()),
        type=type_name,
        headers={"version": 1, **headers},
        correlation_id=str(uuid4()),
        timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        app_id="test@here",
    )


class Collector:
    """A delivery handler that records what it gets and settles it the way the test asks."""

    def __init__(self, settle: str = "ack") -> None:
        self.settle = settle
        self.deliveries: list[Delivery] = []

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        if self.settle == "ack":
            await delivery.ack()

    def ids(self) -> list[str]:
        return [d.message.message_id for d in self.deliveries]


class TransportContract:
    """What services rely on, whatever the broker."""

    @pytest.fixture
    def transport(self) -> Transport:
        raise NotImplementedError

    async def test_a_published_message_reaches_the_bound_queue_intact(self, transport: Transport) -> None:
        queue = await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
        collector = Collector()
        await transport.consume(queue, collector, prefetch=4)
        sent = wire(7, extra="yes")
        await transport.publish("commands", "bustest.ping", sent)
        await assert_eventually(lambda: collector.deliveries, what="the message arrives")
        got = collector.deliveries[0].message
        assert (got.message_id, got.type, got.body, got.correlation_id, got.app_id) == (
            sent.message_id,
            sent.type,
            sent.body,
            sent.correlation_id,
            sent.app_id,
        )
        assert got.headers["extra"] == "yes"
        assert got.headers["version"] == 1
        assert got.timestamp == sent.timestamp
        assert collector.deliveries[0].queue == queue
        assert not collector.deliveries[0].redelivered

    async def test_topic_wildcards_route_and_other_keys_do_not(self, transport: Transport) -> None:
        queue = await transport.declare_queue("watcher", [Binding("events", "bustest.#")])
        collector = Collector()
        await transport.consume(queue, collector, prefetch=4)
        await transport.publish("events", "bustest.pinged", wire(type_name="bustest.pinged"))
        with pytest.raises(Unroutable):
            await transport.publish("events", "other.pinged", wire(type_name="other.pinged"))
        await assert_eventually(lambda: len(collector.deliveries) == 1)

    async def test_an_unroutable_publish_raises(self, transport: Transport) -> None:
        with pytest.raises(Unroutable):
            await transport.publish("commands", "nobody.listens", wire())

    async def test_publish_many_delivers_every_message_and_raises_for_the_unroutable(
        self, transport: Transport
    ) -> None:
        queue = await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
        collector = Collector()
        await transport.consume(queue, collector, prefetch=50)
        batch = [wire(n) for n in range(300)]
        await transport.publish_many("commands", [("bustest.ping", message) for message in batch])
        await assert_eventually(lambda: len(collector.deliveries) == 300, what="every message of the batch")
        assert sorted(collector.ids()) == sorted(message.message_id for message in batch)
        with pytest.raises(Unroutable):
            await transport.publish_many("commands", [("nobody.listens", wire())])

    async def test_publish_each_settles_each_message_on_its_own_and_keeps_their_order(
        self, transport: Transport
    ) -> None:
        queue = await transport.declare_queue(
            "svc", [Binding("commands", "bustest.ping"), Binding("events", "bustest.pinged")]
        )
        collector = Collector()
        await transport.consume(queue, collector, prefetch=50)
        items = [("commands", "bustest.ping", wire(n)) for n in range(40)]
        items[17] = ("commands", "nobody.listens", wire(17))  # an unroutable command in the middle
        items[23] = ("events", "bustest.pinged", wire(23, type_name="bustest.pinged"))
        items[31] = ("nowhere", "bustest.ping", wire(31))  # no such exchange

        outcomes = await transport.publish_each(items)

        assert len(outcomes) == len(items)
        assert isinstance(outcomes[17], Unroutable)
        assert isinstance(outcomes[31], InvalidArgument)
        assert [n for n, outcome in enumerate(outcomes) if outcome is not None] == [17, 31]
        delivered = [message.message_id for n, (_, _, message) in enumerate(items) if n not in (17, 31)]
        await assert_eventually(lambda: len(collector.deliveries) == len(delivered), what="the routable messages")
        assert collector.ids() == delivered  # in the order of the batch

    async def test_publish_each_of_nothing_returns_no_outcome(self, transport: Transport) -> None:
        assert await transport.publish_each([]) == []

    async def test_an_unknown_exchange_is_refused(self, transport: Transport) -> None:
        with pytest.raises(InvalidArgument):
            await transport.publish("nowhere", "bustest.ping", wire())

    async def test_declare_is_idempotent_and_refuses_another_kind(self, transport: Transport) -> None:
        first = await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
        again = await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
        assert first == again == f"{transport.namespace}.svc"
        with pytest.raises(FailedPrecondition):
            await transport.declare_queue("svc", [], kind=QueueKind.CLASSIC)
        with pytest.raises(InvalidArgument):
            await transport.declare_queue("dead", [])

    async def test_prefetch_bounds_unsettled_deliveries(self, transport: Transport) -> None:
        queue = await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
        holder = Collector(settle="none")
        await transport.consume(queue, holder, prefetch=2)
        await transport.publish_many("commands", [("bustest.ping", wire(n)) for n in range(5)])
        await assert_eventually(lambda: len(holder.deliveries) == 2)
        await holder.deliveries[0].ack()
        await assert_eventually(lambda: len(holder.deliveries) == 3)
        await transport.list_dead()  # type: ignore[attr-defined]  # a round trip to the broker before looking again
        assert len(holder.deliveries) == 3

    async def test_unsettled_messages_come_back_flagged_when_a_consumer_is_cancelled(
        self, transport: Transport
    ) -> None:
        queue = await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
        holder = Collector(settle="none")
        subscription = await transport.consume(queue, holder, prefetch=10)
        messages = [wire(n) for n in range(3)]
        await transport.publish_many("commands", [("bustest.ping", m) for m in messages])
        await assert_eventually(lambda: len(holder.deliveries) == 3)
        await holder.deliveries[1].ack()
        await subscription.cancel()
        second = Collector()
        await transport.consume(queue, second, prefetch=10)
        await assert_eventually(lambda: len(second.deliveries) == 2)
        assert sorted(second.ids()) == sorted([messages[0].message_id, messages[2].message_id])
        assert all(d.redelivered for d in second.deliveries)

    async def test_cancel_waits_for_the_handler_in_flight_and_keeps_its_ack(self, transport: Transport) -> None:
        queue = await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
        started, release = asyncio.Event(), asyncio.Event()

        async def slow(delivery: Delivery) -> None:
            started.set()
            await release.wait()
            await delivery.ack()

        subscription = await transport.consume(queue, slow, prefetch=1)
        await transport.publish("commands", "bustest.ping", wire(1))
        await asyncio.wait_for(started.wait(), 10)
        cancelling = asyncio.create_task(subscription.cancel())
        await asyncio.sleep(0)  # let the cancel begin: it must now wait for the handler
        assert not cancelling.done()
        release.set()
        await asyncio.wait_for(cancelling, 10)
        later = wire(2)
        await transport.publish("commands", "bustest.ping", later)
        after = Collector()
        await transport.consume(queue, after, prefetch=1)
        await assert_eventually(lambda: after.deliveries, what="the next consumer gets a message")
        assert after.ids()[0] == later.message_id, "the message finished during the cancel was acked, not returned"

    async def test_requeue_redelivers(self, transport: Transport) -> None:
        queue = await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
        seen: list[Delivery] = []

        async def requeue_once(delivery: Delivery) -> None:
            seen.append(delivery)
            await (delivery.requeue() if len(seen) == 1 else delivery.ack())

        await transport.consume(queue, requeue_once, prefetch=1)
        await transport.publish("commands", "bustest.ping", wire())
        await assert_eventually(lambda: len(seen) == 2)
        assert seen[1].redelivered
        assert seen[0].message.message_id == seen[1].message.message_id

    async def test_retry_later_brings_the_message_back_with_headers(self, transport: Transport) -> None:
        queue = await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
        seen: list[Delivery] = []

        async def retry_once(delivery: Delivery) -> None:
            seen.append(delivery)
            if len(seen) == 1:
                await delivery.retry_later(len(transport.retry_delays) - 1, {ATTEMPTS_HEADER: 1})
            else:
                await delivery.ack()

        await transport.consume(queue, retry_once, prefetch=1)
        sent = wire(3)
        await transport.publish("commands", "bustest.ping", sent)
        await assert_eventually(lambda: len(seen) == 2, what="the message comes back from its delay")
        back = seen[1].message
        assert back.message_id == sent.message_id
        assert back.body == sent.body
        assert back.headers[ATTEMPTS_HEADER] == 1
        assert seen[1].queue == queue

    async def test_dead_letters_are_listed_redriven_and_purged(self, transport: Transport) -> None:
        assert isinstance(transport, DeadLetters)
        queue = await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
        received: list[Delivery] = []

        async def kill(delivery: Delivery) -> None:
            received.append(delivery)
            if len(received) <= 2:
                await delivery.dead_letter({DEATH_REASON_HEADER: "broken", ATTEMPTS_HEADER: 1})
            else:
                await delivery.ack()

        await transport.consume(queue, kill, prefetch=1)
        first, second = wire(1), wire(2)
        await transport.publish("commands", "bustest.ping", first)
        await transport.publish("commands", "bustest.ping", second)
        await assert_eventually(_dead_count_is(transport, 2), what="two dead letters")
        letters = await transport.list_dead()
        assert {letter.message.message_id for letter in letters} == {first.message_id, second.message_id}
        assert all(letter.reason == "broken" and letter.origin_queue == queue for letter in letters)
        assert all(letter.attempts == 1 for letter in letters)
        assert letters[0].message.headers[ORIGIN_QUEUE_HEADER] == queue
        assert len(await transport.list_dead()) == 2, "listing leaves the dead letters in place"

        assert await transport.redrive_dead([first.message_id]) == 1
        await assert_eventually(lambda: len(received) == 3, what="the re-driven message is consumed again")
        assert received[2].message.message_id == first.message_id
        assert ATTEMPTS_HEADER not in received[2].message.headers
        assert [letter.message.message_id for letter in await transport.list_dead()] == [second.message_id]
        assert await transport.purge_dead() == 1
        assert await transport.list_dead() == []

    async def test_dead_letters_are_counted_without_being_read(self, transport: Transport) -> None:
        assert isinstance(transport, DeadLetters)
        assert await transport.count_dead() == 0
        queue = await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])

        async def kill(delivery: Delivery) -> None:
            await delivery.dead_letter({DEATH_REASON_HEADER: "broken", ATTEMPTS_HEADER: 1})

        await transport.consume(queue, kill, prefetch=1)
        for number in range(3):
            await transport.publish("commands", "bustest.ping", wire(number))

        async def three() -> bool:
            return await transport.count_dead() == 3

        await assert_eventually(three, what="three dead letters counted")
        assert len(await transport.list_dead()) == 3, "counting leaves the dead letters in place"

    async def test_a_message_that_keeps_coming_back_is_dead_after_the_delivery_limit(
        self, transport: Transport
    ) -> None:
        assert isinstance(transport, DeadLetters)
        queue = await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
        deliveries = 0

        async def crash_loop(delivery: Delivery) -> None:
            nonlocal deliveries
            deliveries += 1
            await delivery.requeue()  # as a consumer that dies with the message in hand would, again and again

        await transport.consume(queue, crash_loop, prefetch=1)
        sent = wire(1)
        await transport.publish("commands", "bustest.ping", sent)
        await assert_eventually(_dead_count_is(transport, 1), what="the quorum queue dead-letters it")
        [letter] = await transport.list_dead()
        assert letter.message.message_id == sent.message_id
        assert letter.origin_queue == queue
        assert letter.reason == "delivery_limit"
        assert deliveries == 6  # bus_settings: delivery_limit=5

    async def test_request_gets_its_reply_and_times_out_without_one(self, transport: Transport) -> None:
        queue = await transport.declare_queue("svc", [Binding("commands", "bustest.count")])
        silent = {"on": False}

        async def answer(delivery: Delivery) -> None:
            if not silent["on"]:
                await transport.reply(delivery.message, wire(42, type_name="bustest.counted"))
            await delivery.ack()

        await transport.consume(queue, answer, prefetch=4)
        reply = await transport.request("commands", "bustest.count", wire(type_name="bustest.count"), timeout=5)
        assert reply.type == "bustest.counted"
        assert reply.body == b'{"n": 42}'
        silent["on"] = True
        with pytest.raises(RequestTimedOut):
            await transport.request("commands", "bustest.count", wire(type_name="bustest.count"), timeout=0.3)

    async def test_a_request_without_a_timeout_waits_the_default_deadline(self, transport: Transport) -> None:
        queue = await transport.declare_queue("svc", [Binding("commands", "bustest.count")])

        async def never_answer(delivery: Delivery) -> None:
            await delivery.ack()

        await transport.consume(queue, never_answer, prefetch=4)
        with pytest.raises(RequestTimedOut, match=r"within 1\.0s"):  # bus_settings: request_timeout=1.0
            await transport.request("commands", "bustest.count", wire(type_name="bustest.count"))

    async def test_watch_sees_copies_and_vanishes_when_cancelled(self, transport: Transport) -> None:
        queue = await transport.declare_queue("svc", [Binding("events", "bustest.pinged")])
        owner = Collector()
        await transport.consume(queue, owner, prefetch=4)
        watcher = Collector(settle="none")
        watch = await transport.watch([Binding("events", "#")], watcher)
        await transport.publish("events", "bustest.pinged", wire(type_name="bustest.pinged"))
        await assert_eventually(lambda: len(watcher.deliveries) == 1 and len(owner.deliveries) == 1)
        await watch.cancel()
        await transport.publish("events", "bustest.pinged", wire(type_name="bustest.pinged"))
        await assert_eventually(lambda: len(owner.deliveries) == 2)
        assert len(watcher.deliveries) == 1

    async def test_consumers_counts_a_queue_s_consumers_and_tells_a_missing_queue(self, transport: Transport) -> None:
        assert await transport.consumers("never-declared") is None
        queue = await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
        assert await transport.consumers("svc") == 0
        subscription = await transport.consume(queue, Collector(), prefetch=4)
        await assert_eventually(lambda: _consumers_are(transport, "svc", 1), what="one consumer")
        await subscription.cancel()
        await assert_eventually(lambda: _consumers_are(transport, "svc", 0), what="no consumer")
        await transport.publish("commands", "bustest.ping", wire())  # the transport is still usable after the looks


async def _consumers_are(transport: Transport, queue: str, count: int) -> bool:
    return await transport.consumers(queue) == count


def _dead_count_is(transport: DeadLetters, count: int) -> Callable[[], Awaitable[bool] | bool]:
    # Typed as the union assert_eventually takes: mypy cannot infer its type variable from a coroutine function.
    async def condition() -> bool:
        return len(await transport.list_dead()) == count

    return condition


class TestMemoryTransport(TransportContract):
    @pytest.fixture
    def transport(self, memory_transport: MemoryTransport) -> Transport:
        return memory_transport


class TestRabbitTransport(TransportContract):
    @pytest.fixture
    def transport(self, rabbit_transport: RabbitTransport) -> Transport:
        return rabbit_transport
