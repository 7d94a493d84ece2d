"""The agent and the storage service on the real servers, as the agent and storage tests build them.

`Stack` holds a database pool, a RabbitMQ transport in the test's namespace, an outbox relay, and a watcher that
records every event published, so that a test can wait for the one it expects.
"""

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import libvirt
import pytest

from bus.codec import decode, encode
from bus.facade import Bus
from bus.memory import MemoryTransport
from bus.ports import Binding, Delivery, Subscription
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings, create_pool, migrate
from bus.postgres.pool import Pool
from bus.rabbit import RabbitTransport
from plugins.registry import Registry, load_plugins
from schemas import Envelope, Message
from services.agent.bootstrap import build_agent
from services.agent.libvirt_hypervisor import LibvirtHypervisor
from services.agent.schema import migrate_agent
from services.runtime.daemon import Service
from services.runtime.sealing import KEY_BYTES, SecretSealer
from services.storage.bootstrap import build_storage
from services.storage.schema import migrate_storage
from tests.bus_fixtures import bus_settings
from tests.helpers import assert_eventually
from tests.integration.plugins_qcow2fs_support import require_qemu_tools

TEST_LIBVIRT = "test:///default"
M = TypeVar("M", bound=Message)


@dataclass
class Stack:
    """A process's share of the system for one test."""

    pool: Pool
    transport: RabbitTransport | MemoryTransport
    relay: OutboxRelay
    units: PostgresUnitOfWorkFactory
    events: list[Envelope] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    watcher: Subscription | None = None
    # The deployment key every agent of this stack shares (an agent reopens pools its cluster's other agents attached).
    sealer: SecretSealer = field(default_factory=lambda: SecretSealer(os.urandom(KEY_BYTES)))

    @classmethod
    async def open(cls, database_url: str, amqp_url: str, namespace: str, *, in_memory: bool = False) -> "Stack":
        """Open on RabbitMQ, or `in_memory` on the memory transport (how the demo embeds the services)."""
        require_qemu_tools()
        pool = await create_pool(database_url, min_size=1, max_size=5)
        async with pool.acquire() as connection:
            await migrate(connection)
            await migrate_agent(connection)
            await migrate_storage(connection)
        settings = bus_settings(namespace, amqp_url)
        transport = MemoryTransport(settings) if in_memory else RabbitTransport(settings, purpose="storage-test")
        await transport.start()
        relay = OutboxRelay(pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=0.1))
        await relay.start()
        stack = cls(pool, transport, relay, PostgresUnitOfWorkFactory(pool, encode=encode))

        async def record(delivery: Delivery) -> None:
            stack.events.append(decode(delivery.message))

        stack.watcher = await transport.watch([Binding("events", "#")], record)
        return stack

    @property
    def bus(self) -> Bus:
        return Bus(self.transport)

    async def start_agent(self, host: str, cluster: str, *, plugins: Registry | None = None) -> Service:
        service = build_agent(
            self.transport,
            self.units,
            host=host,
            cluster=cluster,
            hypervisor=LibvirtHypervisor(TEST_LIBVIRT),
            plugins=plugins or load_plugins(),
            sealer=self.sealer,
        )
        await service.start()
        self.services.append(service)
        return service

    async def start_storage(self, *, stats_interval: float = 3600.0, plugins: Registry | None = None) -> Service:
        service = build_storage(
            self.transport, self.units, plugins=plugins or load_plugins(), stats_interval=stats_interval
        )
        await service.start()
        self.services.append(service)
        return service

    async def send(self, command: Message, **wrap: Any) -> Envelope:
        """Publish a command; return its envelope (its message id is the cause of the answer)."""
        envelope = Envelope.wrap(command, **wrap)
        await self.bus.publish(envelope)
        return envelope

    async def answer(
        self, cause: Envelope, expected: type[Message] | None = None, *, timeout: float = 20.0
    ) -> Envelope:
        """The first event caused by `cause` (of type `expected` if given)."""

        def found() -> Envelope | None:
            for event in self.events:
                if event.causation_id == cause.message_id and (expected is None or isinstance(event.payload, expected)):
                    return event
            return None

        await assert_eventually(lambda: found() is not None, timeout=timeout, what=f"an answer to {cause.type}")
        answer = found()
        assert answer is not None
        return answer

    async def reply(self, cause: Envelope, *, timeout: float = 30.0) -> Envelope:
        """The reply to a saga's step `cause`: the event that carries its saga id and step."""

        def found() -> list[Envelope]:
            return [
                event
                for event in self.events
                if event.saga_id == cause.saga_id
                and event.step == cause.step
                and event.causation_id == cause.message_id
            ]

        await assert_eventually(lambda: bool(found()), timeout=timeout, what=f"the reply to {cause.type}")
        return found()[0]

    async def outcome(self, cause: Envelope, expected: type[M], *, timeout: float = 30.0) -> M:
        """The first event of type `expected` in the operation `cause` started (same correlation id)."""

        def found() -> list[M]:
            return [
                event.payload
                for event in self.events
                if event.correlation_id == cause.correlation_id and isinstance(event.payload, expected)
            ]

        await assert_eventually(lambda: bool(found()), timeout=timeout, what=f"{expected.__name__} after {cause.type}")
        return found()[0]

    def of_type(self, model: type[Message], predicate: Callable[[Any], bool] = lambda _: True) -> list[Any]:
        """The payloads of the recorded events of one type that satisfy `predicate`."""
        return [e.payload for e in self.events if isinstance(e.payload, model) and predicate(e.payload)]

    async def close(self) -> None:
        for service in reversed(self.services):
            await service.stop()
        if self.watcher is not None:
            await self.watcher.cancel()
        await self.relay.stop()
        await self.transport.close()
        queues = [
            f"{self.transport.namespace}.{consumer.name}" for service in self.services for consumer in service.consumers
        ]
        if isinstance(self.transport, MemoryTransport):
            self.transport.delete_namespace()
        else:
            await self.transport.delete_namespace(queues)
        await self.pool.close()


async def wait_until(check: Callable[[], Awaitable[bool]], *, what: str, timeout: float = 30.0) -> None:
    """Wait for an async condition (a query over the bus, say) with a deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what}")
        await asyncio.sleep(0.05)


def pool_directory(tmp_path: Path) -> Path:
    """An empty directory for a qcow2fs pool."""
    root = tmp_path / f"pool-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    return root


_held: list[libvirt.virConnect] = []


def libvirt_test_driver() -> libvirt.virConnect:
    """A connection to libvirt's test driver, held for the whole session.

    Every connection of the process shares the test driver's VMs, but only while one stays open: when the last one
    closes, the VMs defined so far are gone.
    """
    if not _held:
        _held.append(libvirt.open(TEST_LIBVIRT))
    return _held[0]


def define_vm(disk: Path, *, running: bool) -> uuid.UUID:
    """Define a VM in libvirt's test driver with one disk."""
    vm_id = uuid.uuid4()
    domain = libvirt_test_driver().defineXML(
        f"<domain type='test'><name>vm-{vm_id.hex[:12]}</name><uuid>{vm_id}</uuid><memory>65536</memory>"
        "<os><type>hvm</type></os><devices><disk type='file' device='disk'>"
        f"<source file='{disk}'/><target dev='vda'/></disk></devices></domain>"
    )
    if running:
        domain.create()
    return vm_id


def vm_is_active(vm_id: uuid.UUID) -> bool:
    """Whether the test driver's VM runs."""
    return bool(libvirt_test_driver().lookupByUUIDString(str(vm_id)).isActive())


def fail_without_libvirt() -> None:
    """Fail (never skip) when the libvirt binding cannot open the test driver."""
    try:
        libvirt_test_driver()
    except libvirt.libvirtError as error:
        pytest.fail(f"libvirt's test driver cannot be opened ({error}): apt-get install libvirt0", pytrace=False)
