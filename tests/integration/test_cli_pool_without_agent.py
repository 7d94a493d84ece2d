"""A pool whose agent is not running: `pool add` says so at once instead of leaving the pool in Initial, and a pool
left in Initial anyway (its agent went away after the add was sent) can be deleted.

The storage, snapshot and orchestrator services run in the test's process; no agent does. The host is registered
by one heartbeat, as an agent that stopped since would have left it.
"""

import os
import uuid
from pathlib import Path

import pytest

from bus.facade import Bus
from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from schemas import Envelope
from schemas.hosts import HostHeartbeat, HostIdentity
from schemas.storage import AddPool, PoolScope
from services.agent.settings import AgentSettings
from services.cli.talking import zone_id
from services.runtime.daemon import Settings
from services.stack import System
from tests.helpers import assert_eventually
from tests.integration.cli_support import strata, strata_json

pytestmark = pytest.mark.integration
HOST, CLUSTER = "gone-host", "gone-cluster"


async def test_pool_add_names_the_stopped_agent_and_an_initial_pool_can_be_deleted(
    amqp_url: str, namespace: str, database_url: str, tmp_path: Path
) -> None:
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="cli-test")
    system = await System.start(
        database_url,
        transport,
        settings=Settings(AgentSettings(host=HOST, cluster=CLUSTER)),
        relay_poll=0.1,
        only=("storage", "snapshot", "orchestrator"),
    )
    env = {
        **os.environ,
        "STRATA_AMQP_URL": amqp_url,
        "STRATA_NAMESPACE": namespace,
        "STRATA_DATABASE_URL": database_url,
        "COLUMNS": "200",
    }
    bus = Bus(system.transport)
    try:
        identity = HostIdentity(host=HOST, cluster_id=CLUSTER, hypervisor="kvm", libvirt_uri="x", version="0")
        await bus.publish(Envelope.wrap(HostHeartbeat(identity=identity, interval_seconds=3600)))
        await assert_eventually(lambda: _registered(env), timeout=60, what="the host registered by its heartbeat")

        placement = ["--host", HOST, "--cluster", CLUSTER, "--timeout", "600"]
        code, output = await strata(
            env, "pool", "add", "p1", "--plugin", "qcow2fs", "-c", f"path={tmp_path}", *placement
        )
        assert code == 1, output
        assert f"ServiceNotRunning: the agent of host {HOST} is not running" in output
        assert await strata_json(env, "pool", "list", "--all") == []

        # Sent past the CLI's check (its agent stopped just after): the pool waits in Initial for an answer.
        add = AddPool(
            pool_id=uuid.uuid4(),
            name="p2",
            plugin="qcow2fs",
            config={"path": str(tmp_path)},
            scope=PoolScope.HOST,
            zone_id=zone_id("default"),
            cluster_id=CLUSTER,
            host=HOST,
            hypervisors=frozenset({"kvm"}),
        )
        await bus.publish(Envelope.wrap(add))
        await assert_eventually(lambda: _states(env, {"p2": "Initial"}), timeout=60, what="p2 in Initial")
        deleted = await strata_json(env, "pool", "delete", "p2")
        assert deleted["state"] == "Removed"
    finally:
        await system.stop()
        await transport.delete_namespace()


async def _registered(env: dict[str, str]) -> bool:
    return [host["identity"]["host"] for host in await strata_json(env, "host", "list")] == [HOST]


async def _states(env: dict[str, str], wanted: dict[str, str]) -> bool:
    return {pool["name"]: pool["state"] for pool in await strata_json(env, "pool", "list", "--all")} == wanted
