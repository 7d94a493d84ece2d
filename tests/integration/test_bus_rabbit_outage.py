"""A broker outage seen through a TCP proxy in front of the real RabbitMQ: publishes wait, then fail loudly."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from bus.errors import BrokerUnavailable, ConfirmTimedOut
from bus.ports import Binding
from bus.rabbit import RabbitTransport
from tests.bus_fixtures import bus_settings
from tests.contract.test_bus_transport import wire
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration


class Proxy:
    """Forwards a local port to the broker; `cut()` drops every link and refuses new ones until `restore()`;
    `stall()` keeps the links up but holds what the broker sends (its confirms) until `flow()`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def stall(self) -> None:
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._links):
            writer.close()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._links.update((writer, upstream_writer))

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, from_broker: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    if from_broker:
                        await self._flowing.wait()
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(
            pump(reader, upstream_writer, from_broker=False), pump(upstream_reader, writer, from_broker=True)
        )


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[Proxy]:
    parts = urlsplit(amqp_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await proxy.restore()
    yield proxy
    with contextlib.suppress(AssertionError):
        await proxy.cut()


@pytest.fixture
async def transport(proxy: Proxy, amqp_url: str, namespace: str) -> AsyncIterator[RabbitTransport]:
    """A started transport that reaches the broker through the proxy, with a queue for `bustest.ping` commands."""
    parts = urlsplit(amqp_url)
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"))
    settings = bus_settings(namespace, proxied).model_copy(update={"publish_outage_bound": 0.5, "confirm_timeout": 0.5})
    transport = RabbitTransport(settings, purpose="outage")
    await transport.start()
    try:
        await transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
        yield transport
    finally:
        proxy.flow()
        await transport.close()
        # Cleaned up around the proxy, whatever state the test left it in.
        await RabbitTransport(bus_settings(namespace, amqp_url)).delete_namespace()


async def test_a_publish_during_an_outage_waits_then_fails_loudly_and_works_once_back(
    proxy: Proxy, transport: RabbitTransport
) -> None:
    await transport.publish("commands", "bustest.ping", wire(1))
    await proxy.cut()
    with pytest.raises(BrokerUnavailable):
        await transport.publish("commands", "bustest.ping", wire(2))
    await proxy.restore()
    await assert_eventually(lambda: transport.reconnects >= 1, what="the transport reconnects by itself")
    await transport.publish("commands", "bustest.ping", wire(3))


async def test_a_batch_during_an_outage_waits_then_fails_each_message_loudly_and_works_once_back(
    proxy: Proxy, transport: RabbitTransport
) -> None:
    assert await transport.publish_each([("commands", "bustest.ping", wire(n)) for n in range(3)]) == [None] * 3
    await proxy.cut()
    outcomes = await transport.publish_each([("commands", "bustest.ping", wire(n)) for n in range(3)])
    assert [type(outcome) for outcome in outcomes] == [BrokerUnavailable] * 3
    await proxy.restore()
    await assert_eventually(lambda: transport.reconnects >= 1, what="the transport reconnects by itself")
    assert await transport.publish_each([("commands", "bustest.ping", wire(n)) for n in range(3)]) == [None] * 3


async def test_a_publish_the_broker_never_confirms_fails_at_its_deadline(
    proxy: Proxy, transport: RabbitTransport
) -> None:
    # Before: a broker that took the message and never confirmed it (blocked by an alarm, a stalled link) kept the
    # publisher, and so the outbox relay, waiting forever.
    await transport.publish("commands", "bustest.ping", wire(1))
    proxy.stall()
    with pytest.raises(ConfirmTimedOut, match="did not confirm"):
        await transport.publish("commands", "bustest.ping", wire(2))
    outcomes = await transport.publish_each([("commands", "bustest.ping", wire(n)) for n in range(3)])
    assert [type(outcome) for outcome in outcomes] == [ConfirmTimedOut] * 3
    with pytest.raises(ConfirmTimedOut):
        await transport.publish_many("commands", [("bustest.ping", wire(n)) for n in range(3)])
    proxy.flow()
    await transport.publish("commands", "bustest.ping", wire(3))
