"""The deployed topology: an event published before its consumer ever ran waits in the consumer's queue and is
handled once the consumer starts, whether `strata topology apply` declared the queue or another daemon did at its
own start (before, the README asked operators to start every service once first: the event went nowhere)."""

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest

from bus.facade import Bus
from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from schemas import Envelope
from schemas.storage import PoolAdded, PoolScope
from services.daemons import deployed
from tests.e2e.daemon_processes import DaemonProcess, daemon_env, remove_namespace
from tests.helpers import assert_eventually

pytestmark = pytest.mark.e2e
STRATA = str(Path(sys.executable).parent / "strata")


@pytest.fixture
async def env(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[dict[str, str]]:
    yield daemon_env(database_url, amqp_url, namespace)
    await remove_namespace(amqp_url, namespace)


async def strata(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `strata ARGS`; return its exit status and its output (stdout, then stderr)."""
    process = await asyncio.create_subprocess_exec(
        STRATA, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    output, errors = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, output.decode() + errors.decode()


async def announce_pool(env: dict[str, str]) -> UUID:
    """Publish `pool.added` as the storage service would, straight to the broker (no daemon has run yet)."""
    pool_id = uuid4()
    event = PoolAdded(
        pool_id=pool_id,
        name="early",
        plugin="qcow2fs",
        scope=PoolScope.HOST,
        zone_id=uuid4(),
        cluster_id="c1",
        host="h1",
        capacity_bytes=1 << 30,
        used_bytes=0,
    )
    transport = RabbitTransport(
        BusSettings(amqp_url=env["STRATA_AMQP_URL"], namespace=env["STRATA_NAMESPACE"]), purpose="e2e"
    )
    await transport.start()
    try:
        await Bus(transport).publish(Envelope.wrap(event, producer="storage@e2e"))
    finally:
        await transport.close()
    return pool_id


async def snapshot_service_knows(env: dict[str, str], pool_id: UUID) -> None:
    """Start the snapshot daemon for the first time and wait until its read model holds the pool."""
    daemon = await DaemonProcess.start(env, "run", "snapshot")
    try:

        async def known() -> bool:
            connection = await asyncpg.connect(env["STRATA_DATABASE_URL"])
            try:
                return bool(
                    await connection.fetchval("SELECT count(*) FROM snapshot.pools WHERE pool_id = $1", pool_id)
                )
            finally:
                await connection.close()

        await assert_eventually(known, timeout=30, what="the snapshot service to learn of the early pool")
    finally:
        assert await daemon.terminate() == 0, daemon.show_log()


async def test_topology_apply_declares_every_daemons_queue_with_its_bindings(env: dict[str, str]) -> None:
    code, output = await strata(env, "topology", "apply", "--json")
    assert code == 0, output
    declared = {entry["queue"]: entry["bindings"] for entry in json.loads(output)}
    assert set(declared) == {queue.name for daemon in deployed(env) for queue in daemon.queues}
    assert {"exchange": "events", "routing_key": "pool.added"} in declared["snapshot"]
    assert {"exchange": "commands", "routing_key": "volume.create"} in declared["storage"]


async def test_an_event_published_before_its_consumer_first_ran_is_handled_once_it_starts(
    env: dict[str, str],
) -> None:
    code, output = await strata(env, "topology", "apply")
    assert code == 0, output
    pool_id = await announce_pool(env)
    await snapshot_service_knows(env, pool_id)


async def test_a_daemon_applies_the_topology_for_the_others_when_it_starts(env: dict[str, str]) -> None:
    storage = await DaemonProcess.start(env, "run", "storage")
    try:
        pool_id = await announce_pool(env)  # the snapshot service has never run in this namespace
    finally:
        assert await storage.terminate() == 0, storage.show_log()
    await snapshot_service_knows(env, pool_id)
