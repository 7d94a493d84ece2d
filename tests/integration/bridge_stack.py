"""The bridge's integration stack: storage, snapshot, orchestrator, an agent (libvirt's test driver) and the bridge in
the test's process (services/stack, as `strata up` runs them) on the real RabbitMQ and PostgreSQL, a CloudStack
exchange of the test's own, and a CloudStack-side subscriber that collects what strata answers there.
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import aio_pika
import asyncpg
import pytest

from bus.facade import Bus
from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from schemas import Envelope, StrataError
from schemas.image import AddImageStore
from schemas.storage import AddPool, PoolScope
from services.agent.settings import AgentSettings
from services.bridge.bootstrap import cloudstack_queue
from services.bridge.settings import BridgeSettings
from services.runtime.daemon import Settings
from services.stack import System
from tests import cloudstack_wire as wire
from tests.helpers import assert_eventually

HOST, CLUSTER = "bridge-host", "bridge-cluster"
TEST_DOMAIN = UUID("6695eb01-f6a4-8304-79aa-97f2502e193f")  # libvirt's test:///default VM "test"
DAEMONS = ("storage", "snapshot", "image", "orchestrator", "agent", "bridge")


@dataclass
class CloudStackSide:
    """The test's CloudStack: its exchange, and a subscriber of strata's answers on it (`strata.ActionEvent.#`)."""

    exchange: aio_pika.abc.AbstractExchange
    answers: list[wire.Parsed] = field(default_factory=list)

    async def publish(self, message: wire.Message) -> None:
        """Publish as CloudStack's RabbitMQEventBus does."""
        await wire.publish(self.exchange, message)

    async def answer(self, entity_uuid: UUID, event: str, *, timeout: float = 60.0) -> wire.Parsed:
        """The answer strata published for `event` on `entity_uuid`."""

        async def found() -> wire.Parsed | None:
            return next(
                (a for a in self.answers if a.resource_uuid == str(entity_uuid) and a.fields["event"] == event), None
            )

        answer = await assert_eventually(found, timeout=timeout, interval=0.05, what=f"strata's answer to {event}")
        assert answer is not None
        return answer


@dataclass
class BridgeCloud:
    """The running services and the test's connections."""

    system: System
    db: "asyncpg.Pool[asyncpg.Record]"
    cloudstack: CloudStackSide
    transport: RabbitTransport
    base: Path
    zone_id: UUID
    amqp_url: str
    namespace: str
    database_url: str
    exchange: str

    @property
    def env(self) -> dict[str, str]:
        """What points `strata` at this stack."""
        return dict(
            os.environ,
            STRATA_AMQP_URL=self.amqp_url,
            STRATA_NAMESPACE=self.namespace,
            STRATA_DATABASE_URL=self.database_url,
            STRATA_BRIDGE_EXCHANGE=self.exchange,
            COLUMNS="200",
        )

    async def value(self, query: str, *args: object) -> Any:  # Any: a column's value
        return await self.db.fetchval(query, *args)

    async def wait(self, condition: Callable[[], Awaitable[object]], what: str, timeout: float = 60.0) -> None:
        await assert_eventually(condition, timeout=timeout, interval=0.05, what=what)

    async def send(self, payload: Any) -> Envelope:  # Any: a registered command
        """Publish a strata command directly (the set-up that CloudStack does not drive), retrying while its
        queue is being declared."""
        envelope = Envelope.wrap(payload, producer="bridge-test")
        for _ in range(100):
            try:
                await Bus(self.transport).publish(envelope)
                return envelope
            except StrataError:
                await asyncio.sleep(0.1)
        raise AssertionError(f"could not publish {payload}")

    async def add_pool(self, name: str) -> UUID:
        """A host-scoped qcow2fs pool, Up and known to the snapshot service."""
        pool_id = uuid.uuid4()
        path = self.base / name
        path.mkdir()
        await self.send(
            AddPool(
                pool_id=pool_id,
                name=name,
                plugin="qcow2fs",
                config={"path": str(path)},
                scope=PoolScope.HOST,
                zone_id=self.zone_id,
                cluster_id=CLUSTER,
                host=HOST,
            )
        )

        async def up() -> bool:
            state = await self.value("SELECT state FROM storage.pools WHERE pool_id = $1", pool_id)
            known = await self.value("SELECT count(*) FROM snapshot.pools WHERE pool_id = $1", pool_id)
            return bool(state == "Up" and known == 1)

        await self.wait(up, f"pool {name} Up")
        return pool_id

    async def add_store(self, name: str, zone_id: UUID | None = None) -> UUID:
        """A directory image store (fsbackup) of the zone (the stack's unless given), known to the image service."""
        path = self.base / name
        await asyncio.to_thread(path.mkdir)
        store_id = uuid.uuid4()
        await self.send(
            AddImageStore(
                store_id=store_id,
                name=name,
                zone_id=zone_id or self.zone_id,
                plugin="fsbackup",
                config={"path": str(path), "compression": "none"},
            )
        )
        await self.wait(
            lambda: self.value("SELECT count(*) FROM image.stores WHERE store_id = $1", store_id), f"store {name}"
        )
        return store_id

    async def outcomes(self) -> dict[str, int]:
        """How many CloudStack messages the bridge recorded, by outcome."""
        rows = await self.db.fetch("SELECT outcome, count(*) AS n FROM bridge.events GROUP BY outcome")
        return {row["outcome"]: row["n"] for row in rows}

    async def commands(self, command_type: str) -> int:
        """How many commands of a type strata's journal holds (every command sent is journaled once)."""
        return int(await self.value("SELECT count(*) FROM bus.journal WHERE type = $1", command_type))


@asynccontextmanager
async def bridge_cloud(
    amqp_url: str, namespace: str, database_url: str, base: Path, *, more: tuple[str, ...] = ()
) -> AsyncIterator[BridgeCloud]:
    """Start the stack (and the daemons `more` names) with the bridge on a CloudStack exchange of this test's own;
    remove it all afterwards."""
    if shutil.which("qemu-img") is None:
        pytest.fail("qemu-img is missing: apt-get install qemu-utils", pytrace=False)
    exchange_name = f"cloudstack-events-{namespace}"
    zone_id = uuid.uuid4()
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="bridge-test")
    settings = Settings(
        AgentSettings(host=HOST, cluster=CLUSTER),
        BridgeSettings(exchange=exchange_name, zone_id=zone_id, volume_size_bytes=16 << 20),
    )
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    exchange = await wire.declare_exchange(channel, exchange_name)
    side = CloudStackSide(exchange)
    listener = await channel.declare_queue(exclusive=True, auto_delete=True)
    await listener.bind(exchange, "strata.ActionEvent.#")

    async def heard(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        side.answers.append(wire.parse(message.routing_key or "", message.body))
        await message.ack()

    await listener.consume(heard)
    system = await System.start(database_url, transport, settings=settings, relay_poll=0.1, only=DAEMONS + more)
    db = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        yield BridgeCloud(system, db, side, transport, base, zone_id, amqp_url, namespace, database_url, exchange_name)
    finally:
        await db.close()
        await system.stop()
        await transport.delete_namespace([f"{namespace}.bridge", cloudstack_queue(namespace)])
        await channel.exchange_delete(exchange_name)
        await connection.close()


def volume_create(volume: UUID, pool: UUID, status: str, *, vm: UUID | None = None, **more: object) -> wire.Message:
    entities = {"Volume": volume, "StoragePool": pool} | ({"VirtualMachine": vm} if vm else {})
    return wire.action_event("VOLUME.CREATE", status, entity="Volume", entity_uuid=volume, entities=entities, **more)  # type: ignore[arg-type]  # the helper's keywords


async def created_volume(cloud: BridgeCloud, pool: UUID, *, vm: UUID | None = None) -> UUID:
    """A volume made through the bridge: Scheduled then Started, as CloudStack sends them."""
    volume = uuid.uuid4()
    for status in ("Scheduled", "Started"):
        await cloud.cloudstack.publish(volume_create(volume, pool, status, vm=vm))
    answer = await cloud.cloudstack.answer(volume, "VOLUME.CREATE")
    assert not answer.failed, answer.fields
    return volume


async def count(cloud: BridgeCloud, outcome: str, expected: int) -> bool:
    return (await cloud.outcomes()).get(outcome, 0) == expected
