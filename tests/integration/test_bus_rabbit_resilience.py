"""Resilience on the real RabbitMQ: the broker closes our connection mid-stream, or cancels our consumer."""

import asyncio
import shutil
from collections.abc import Awaitable, Callable

import aiormq
import pytest

from bus.errors import BrokerUnavailable, Unroutable
from bus.facade import Bus
from bus.memory_uow import MemoryUnitOfWorkFactory
from bus.ports import UnitOfWork
from bus.rabbit import RabbitTransport
from bus.runtime import Consumer
from schemas import Envelope
from tests.bus_fixtures import Ping, bus_settings, bus_test_messages
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration


async def rabbitmqctl(*args: str) -> str:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        pytest.fail(
            "rabbitmqctl is needed to close connections from the broker's side (apt-get install rabbitmq-server)"
        )
    process = await asyncio.create_subprocess_exec(
        tool, "-q", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        pytest.fail(f"rabbitmqctl {' '.join(args)} failed: {err.decode()}")
    return out.decode()


async def close_connections_of(namespace: str) -> int:
    """Close, from the broker, only the connections named after this test's namespace (never anyone else's)."""
    listing = await rabbitmqctl("list_connections", "pid", "client_properties")
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if f"{namespace}:" in line]
    for pid in pids:
        await rabbitmqctl("close_connection", pid, "strata resilience test")
    return len(pids)


async def test_a_connection_closed_by_the_broker_mid_stream_loses_nothing(
    rabbit_transport: RabbitTransport, namespace: str
) -> None:
    handled: set[int] = set()

    async def ping(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        handled.add(command.n)

    bus = Bus(rabbit_transport, messages=bus_test_messages)
    consumer = Consumer(
        rabbit_transport,
        MemoryUnitOfWorkFactory(bus),
        name="pinger",
        handlers={Ping: ping},
        prefetch=16,
        messages=bus_test_messages,
    )
    await consumer.start()
    total = 600

    async def produce() -> None:
        for start in range(0, total, 20):
            await bus.publish_many([Envelope.wrap(Ping(n=n)) for n in range(start, start + 20)])

    producer = asyncio.create_task(produce())
    await assert_eventually(lambda: len(handled) >= 100, what="the stream is flowing")
    assert await close_connections_of(namespace) >= 1
    await assert_eventually(lambda: rabbit_transport.reconnects >= 1, what="the transport reconnects")
    await asyncio.wait_for(producer, 30)
    await assert_eventually(lambda: len(handled) == total, timeout=30, what="every message handled once reconnected")
    assert handled == set(range(total))
    await consumer.stop()


async def test_a_consumer_cancelled_by_the_broker_comes_back(rabbit_transport: RabbitTransport, amqp_url: str) -> None:
    handled: list[int] = []

    async def ping(command: Ping, envelope: Envelope, uow: UnitOfWork) -> None:
        handled.append(command.n)

    bus = Bus(rabbit_transport, messages=bus_test_messages)
    consumer = Consumer(
        rabbit_transport,
        MemoryUnitOfWorkFactory(bus),
        name="pinger",
        handlers={Ping: ping},
        messages=bus_test_messages,
    )
    await consumer.start()
    await bus.publish(Envelope.wrap(Ping(n=1)))
    await assert_eventually(lambda: handled == [1])
    # Deleting the queue under the consumer makes the broker cancel it (basic.cancel), as a failover can.
    async with aiormq.connect(amqp_url) as admin:
        channel = await admin.channel()
        await channel.queue_delete(consumer.queue)

    async def publish_again() -> bool:
        try:
            await bus.publish(Envelope.wrap(Ping(n=2)))
        except Unroutable:
            return False  # not re-declared yet
        return True

    published_again: Callable[[], Awaitable[bool] | bool] = publish_again  # the union assert_eventually takes
    await assert_eventually(published_again, what="the queue is re-declared with its bindings")
    await assert_eventually(lambda: 2 in handled, what="the re-attached consumer handles new messages")
    await consumer.stop()


async def test_an_unreachable_broker_fails_loudly_within_the_bound(namespace: str) -> None:
    settings = bus_settings(namespace, "amqp://guest:secret-password@127.0.0.1:1/").model_copy(
        update={"publish_outage_bound": 0.5}
    )
    transport = RabbitTransport(settings)
    with pytest.raises(BrokerUnavailable) as raised:
        await transport.start()
    assert "secret-password" not in str(raised.value)
    assert "127.0.0.1:1" in str(raised.value)
