"""Agent commands are routed by host or cluster; every other message keeps its wire type as its routing key."""

from uuid import uuid4

import pytest

from bus.facade import Bus
from bus.memory import MemoryTransport
from bus.ports import Binding, Delivery
from bus.postgres.records import route_by_kind
from schemas import Envelope
from schemas.agent import CreateVolumeOnPool
from schemas.storage import CreateVolume
from schemas.vm import StopVm
from tests.helpers import assert_eventually

pytestmark = pytest.mark.unit


def test_plain_messages_route_by_their_type() -> None:
    command = CreateVolume(volume_id=uuid4(), name="data", size_bytes=1, zone_id=uuid4())
    assert command.routing_key() == "volume.create"


def test_agent_command_routes_to_its_host_with_dots_replaced() -> None:
    command = StopVm(vm_id=uuid4(), host="kvm1.example.org", cluster_id="c1")
    assert command.routing_key() == "agent.host.kvm1-example-org.vm.stop"


def test_agent_command_without_host_routes_to_its_cluster() -> None:
    command = CreateVolumeOnPool(pool_id=uuid4(), volume_id=uuid4(), size_bytes=1, cluster_id="rack.7")
    assert command.routing_key() == "agent.cluster.rack-7.agent.volume.create"


def test_outbox_routes_like_the_bus() -> None:
    envelope = Envelope.wrap(StopVm(vm_id=uuid4(), host="h1"))
    assert route_by_kind(envelope) == ("commands", "agent.host.h1.vm.stop")


async def test_bus_delivers_an_agent_command_to_the_host_queue_only(memory_transport: MemoryTransport) -> None:
    host_queue = await memory_transport.declare_queue("agent.h1", [Binding("commands", "agent.host.h1.#")])
    other_queue = await memory_transport.declare_queue("agent.h2", [Binding("commands", "agent.host.h2.#")])
    received: dict[str, list[str]] = {host_queue: [], other_queue: []}

    async def take(delivery: Delivery) -> None:
        received[delivery.queue].append(delivery.message.type)
        await delivery.ack()

    await memory_transport.consume(host_queue, take, prefetch=4)
    await memory_transport.consume(other_queue, take, prefetch=4)
    await Bus(memory_transport).publish(Envelope.wrap(StopVm(vm_id=uuid4(), host="h1")))
    await assert_eventually(lambda: received[host_queue] == ["vm.stop"], what="the host's agent got it")
    assert received[other_queue] == []
