"""`strata namespace delete NS --yes` as a user runs it: refused while the namespace's daemons consume; once they
stopped, every queue strata knows in it is gone (the services', the registered hosts' agents') with its exchanges."""

import os

import pytest

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from services.agent.settings import AgentSettings
from services.runtime.daemon import Settings
from services.stack import System
from tests.integration.cli_support import strata

pytestmark = pytest.mark.integration
HOST, CLUSTER = "ns-host", "ns-cluster"


async def test_namespace_delete_refuses_a_running_one_then_removes_its_queues(
    amqp_url: str, namespace: str, database_url: str
) -> None:
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="cli-test")
    system = await System.start(database_url, transport, settings=Settings(AgentSettings(host=HOST, cluster=CLUSTER)))
    env = {**os.environ, "STRATA_AMQP_URL": amqp_url, "STRATA_DATABASE_URL": database_url, "COLUMNS": "200"}
    looking = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="look")
    await looking.start()
    try:
        code, output = await strata(env, "namespace", "delete", namespace, "--yes")
        assert code == 1, output
        assert "still has a consumer: stop the namespace's daemons first" in output
        assert await looking.consumers("storage") == 1, "nothing was deleted"

        await system.stop()
        code, output = await strata(env, "namespace", "delete", namespace, "--yes")
        assert code == 0, output
        assert f"namespace {namespace} deleted" in output
        for queue in ("storage", "snapshot", "orchestrator", f"agent.{HOST}", f"agent.cluster.{CLUSTER}"):
            assert await looking.consumers(queue) is None, f"{queue} is left"
    finally:
        await looking.close()
        await system.stop()
        await transport.delete_namespace()
