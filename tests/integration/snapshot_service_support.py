"""The snapshot service on the real RabbitMQ and PostgreSQL, with a stand-in agent that answers at once.

The stand-in binds the host queue keys a real agent binds and answers the snapshot service's data-plane commands
with the agent's events; the real agent takes its place in the e2e test.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID, uuid4

from bus.codec import encode
from bus.facade import Bus
from bus.ports import Binding, Handler, UnitOfWork
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings, create_pool
from bus.postgres.pool import Pool
from bus.rabbit import RabbitTransport
from bus.runtime import Consumer
from schemas import Envelope, ErrorInfo, Message
from schemas.agent import AgentCommand
from schemas.snapshot import (
    CreateSnapshotOnPool,
    DeleteSnapshotOnPool,
    RevertVolumeOnPool,
    SnapshotCreatedOnPool,
    SnapshotCreateOnPoolFailed,
    SnapshotDeletedOnPool,
    VolumeRevertedOnPool,
)
from schemas.storage import PoolAdded, PoolScope, VolumeCreated
from services.runtime.daemon import Service
from services.runtime.runner import migrate_daemons
from services.snapshot.bootstrap import DAEMON, build_snapshot
from services.snapshot.deps import SnapshotDeps
from tests.bus_fixtures import bus_settings
from tests.helpers import assert_eventually

HOST = "h1"


@dataclass
class StandInAgent:
    """Answers the snapshot service's agent commands as a healthy agent would, and remembers them."""

    received: list[Envelope] = field(default_factory=list)
    failures: list[ErrorInfo] = field(default_factory=list)  # the next commands fail with these, in order

    def handlers(self) -> dict[type[Message], Handler]:
        return {CreateSnapshotOnPool: self.create, DeleteSnapshotOnPool: self.delete, RevertVolumeOnPool: self.revert}

    async def create(self, command: CreateSnapshotOnPool, envelope: Envelope, uow: UnitOfWork) -> None:
        self.received.append(envelope)
        if self.failures:
            failed = SnapshotCreateOnPoolFailed(
                pool_id=command.pool_id,
                volume_id=command.volume_id,
                snapshot_id=command.snapshot_id,
                error=self.failures.pop(0),
            )
            uow.emit(Envelope.wrap(failed, cause=envelope, producer="agent@h1"))
            return
        done = SnapshotCreatedOnPool(
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            snapshot_id=command.snapshot_id,
            kind=command.kind,
            physical_size_bytes=4096,
        )
        uow.emit(Envelope.wrap(done, cause=envelope, producer="agent@h1"))

    async def delete(self, command: DeleteSnapshotOnPool, envelope: Envelope, uow: UnitOfWork) -> None:
        self.received.append(envelope)
        done = SnapshotDeletedOnPool(
            pool_id=command.pool_id, volume_id=command.volume_id, snapshot_id=command.snapshot_id
        )
        uow.emit(Envelope.wrap(done, cause=envelope, producer="agent@h1"))

    async def revert(self, command: RevertVolumeOnPool, envelope: Envelope, uow: UnitOfWork) -> None:
        self.received.append(envelope)
        done = VolumeRevertedOnPool(
            pool_id=command.pool_id, volume_id=command.volume_id, snapshot_id=command.snapshot_id
        )
        uow.emit(Envelope.wrap(done, cause=envelope, producer="agent@h1"))

    def of_type(self, model: type[Message]) -> list[Envelope]:
        return [envelope for envelope in self.received if isinstance(envelope.payload, model)]


class HostConsumer(Consumer):
    """Binds agent commands by host, as the agent of HOST does."""

    def bindings(self) -> list[Binding]:
        return [
            Binding("commands", f"agent.host.{HOST}.{model.message_type}")
            if issubclass(model, AgentCommand)
            else Binding("commands", model.message_type)
            for model in self.handlers
        ]


@dataclass
class Stack:
    """The snapshot service, a stand-in agent and what a test needs to talk to them."""

    pool: Pool
    transport: RabbitTransport
    relay: OutboxRelay
    units: PostgresUnitOfWorkFactory
    agent: StandInAgent
    agent_consumer: Consumer
    service: Service | None = None

    @property
    def bus(self) -> Bus:
        return Bus(self.transport)

    async def start_service(self, deps: SnapshotDeps | None = None, *, scheduler_poll: float = 0.05) -> None:
        self.service = build_snapshot(
            self.transport, self.units, deps=deps or SnapshotDeps(), scheduler_poll=scheduler_poll
        )
        await self.service.start()

    async def stop_service(self) -> None:
        if self.service is not None:
            await self.service.stop()
            self.service = None

    async def add_volume(self, *, vm_id: UUID | None = None) -> UUID:
        """A pool on HOST and a Ready volume on it, as the storage service announces them; wait until known."""
        pool_id, volume_id = uuid4(), uuid4()
        await self.bus.publish(
            Envelope.wrap(
                PoolAdded(
                    pool_id=pool_id,
                    name="p1",
                    plugin="qcow2fs",
                    scope=PoolScope.HOST,
                    zone_id=uuid4(),
                    cluster_id="c1",
                    host=HOST,
                    capacity_bytes=1 << 30,
                    used_bytes=0,
                ),
                producer="storage@test",
            )
        )
        await self.bus.publish(
            Envelope.wrap(
                VolumeCreated(volume_id=volume_id, pool_id=pool_id, size_bytes=1 << 20, vm_id=vm_id),
                producer="storage@test",
            )
        )
        return volume_id

    async def fetchval(self, query: str, *args: object) -> object:
        async with self.pool.acquire() as connection:
            return await connection.fetchval(query, *args)


async def open_stack(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Stack]:
    """Open the stack (use it as the body of a test module's `stack` fixture); everything is removed after."""
    pool = await create_pool(database_url, min_size=2, max_size=8)
    await migrate_daemons(pool, [DAEMON])
    transport = RabbitTransport(bus_settings(namespace, amqp_url), purpose="snapshot-test")
    await transport.start()
    relay = OutboxRelay(pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=0.1))
    await relay.start()
    units = PostgresUnitOfWorkFactory(pool, encode=encode)
    agent = StandInAgent()
    agent_consumer = HostConsumer(transport, units, name="stand-in-agent", handlers=agent.handlers())
    await agent_consumer.start()
    stack = Stack(pool, transport, relay, units, agent, agent_consumer)
    yield stack
    await stack.stop_service()
    await agent_consumer.stop()
    await relay.stop()
    await transport.close()
    await transport.delete_namespace([f"{namespace}.snapshot", f"{namespace}.stand-in-agent"])
    await pool.close()


async def eventually(condition: Callable[[], Awaitable[object]], *, what: str, timeout: float = 10.0) -> None:
    """`assert_eventually` for a coroutine function (mypy cannot infer its type variable from one)."""
    typed: Callable[[], Awaitable[object] | object] = condition
    await assert_eventually(typed, timeout=timeout, what=what)
