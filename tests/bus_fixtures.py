"""Bus fixtures: a transport of each kind in the test's own namespace, removed afterwards, and test messages."""

from collections.abc import AsyncIterator

import pytest
from pydantic import Field

from bus.memory import MemoryTransport
from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from schemas import Command, Event, MessageRegistry, message

# Messages of the bus tests live in a registry of their own, so they never show up in the real catalogue.
bus_test_messages = MessageRegistry()


@message("bustest.ping", 1, into=bus_test_messages)
class Ping(Command):
    """A command the bus tests send."""

    n: int = Field(ge=0, description="A sequence number.")
    text: str = Field(default="", description="Free text.")


@message("bustest.pinged", 1, into=bus_test_messages)
class Pinged(Event):
    """An event the bus tests publish."""

    n: int = Field(ge=0, description="The sequence number of the ping.")


@message("bustest.count", 1, into=bus_test_messages)
class CountPings(Command):
    """A query answered by request/reply."""


@message("bustest.counted", 1, into=bus_test_messages)
class PingsCounted(Event):
    """The answer to CountPings."""

    count: int = Field(ge=0, description="Pings seen so far.")


def bus_settings(namespace: str, amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/") -> BusSettings:
    """Settings for tests: tiny retry delays and a short outage bound."""
    return BusSettings(
        amqp_url=amqp_url,
        namespace=namespace,
        retry_delays=(0.05, 0.05, 0.05),
        prefetch=16,
        delivery_limit=5,
        publish_outage_bound=15.0,
        reconnect_delay_max=0.5,
        request_timeout=1.0,
    )


@pytest.fixture
async def memory_transport(namespace: str) -> AsyncIterator[MemoryTransport]:
    """A started MemoryTransport in the test's namespace."""
    transport = MemoryTransport(bus_settings(namespace))
    await transport.start()
    yield transport
    await transport.close()
    transport.delete_namespace()


@pytest.fixture
async def rabbit_transport(amqp_url: str, namespace: str) -> AsyncIterator[RabbitTransport]:
    """A started RabbitTransport in the test's namespace; every exchange and queue of it is deleted afterwards."""
    transport = RabbitTransport(bus_settings(namespace, amqp_url), purpose="test")
    await transport.start()
    yield transport
    await transport.close()
    await transport.delete_namespace()
