"""A broker outage seen through a TCP proxy in front of the real RabbitMQ: publishes wait, then fail loudly."""

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
from tests.tcp_proxy import Proxy

pytestmark = pytest.mark.integration


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
