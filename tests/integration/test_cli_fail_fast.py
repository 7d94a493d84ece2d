"""With the daemons stopped (their queues left behind, nobody consuming), a command fails at once naming the service
that is not running, instead of waiting its whole timeout and blaming a daemon that may be running.

Every command is given a timeout of 600 s, far more than the test waits for it: only the fast path can pass.
"""

import os
import shutil
import uuid
from collections.abc import AsyncIterator

import pytest

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from services.agent.settings import AgentSettings
from services.runtime.daemon import Settings
from services.stack import System
from tests.integration.cli_support import strata

pytestmark = pytest.mark.integration
HOST, CLUSTER = "ff-host", "ff-cluster"
LONG = ["--timeout", "600"]


@pytest.fixture
async def stopped_env(amqp_url: str, namespace: str, database_url: str) -> AsyncIterator[dict[str, str]]:
    """Every service started once (queues and tables made) and stopped; the environment pointing `strata` at them."""
    if shutil.which("qemu-img") is None:
        pytest.fail("qemu-img is missing: apt-get install qemu-utils", pytrace=False)
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="cli-test")
    system = await System.start(database_url, transport, settings=Settings(AgentSettings(host=HOST, cluster=CLUSTER)))
    await system.stop()
    env = dict(os.environ)
    env.update(STRATA_AMQP_URL=amqp_url, STRATA_NAMESPACE=namespace, STRATA_DATABASE_URL=database_url, COLUMNS="200")
    try:
        yield env
    finally:
        await transport.delete_namespace()


async def test_pool_list_names_the_stopped_storage_service(stopped_env: dict[str, str]) -> None:
    code, output = await strata(stopped_env, "pool", "list", *LONG)
    assert code == 1, output
    assert "ServiceNotRunning: the storage service is not running" in output
    assert "strata run storage" in output


async def test_volume_create_names_the_stopped_storage_service(stopped_env: dict[str, str]) -> None:
    code, output = await strata(stopped_env, "volume", "create", "v1", "16M", *LONG)
    assert code == 1, output
    assert "the storage service is not running" in output


async def test_vm_revert_names_the_stopped_storage_service_it_asks_first(stopped_env: dict[str, str]) -> None:
    pair = f"{uuid.uuid4()}={uuid.uuid4()}"
    code, output = await strata(
        stopped_env, "vm", "revert", str(uuid.uuid4()), str(uuid.uuid4()), "--host", HOST, "--pair", pair, *LONG
    )
    assert code == 1, output
    assert "the storage service is not running" in output


async def test_vm_revert_names_a_stopped_orchestrator_when_the_rest_runs(
    amqp_url: str, namespace: str, database_url: str
) -> None:
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="cli-test")
    system = await System.start(
        database_url,
        transport,
        settings=Settings(AgentSettings(host=HOST, cluster=CLUSTER)),
        only=("storage", "snapshot", "agent"),  # every queue is declared; the orchestrator's has no consumer
    )
    env = dict(os.environ)
    env.update(STRATA_AMQP_URL=amqp_url, STRATA_NAMESPACE=namespace, STRATA_DATABASE_URL=database_url, COLUMNS="200")
    pair = f"{uuid.uuid4()}={uuid.uuid4()}"
    try:
        code, output = await strata(
            env, "vm", "revert", str(uuid.uuid4()), str(uuid.uuid4()), "--host", HOST, "--pair", pair, *LONG
        )
    finally:
        await system.stop()
        await transport.delete_namespace()
    assert code == 1, output
    assert "the orchestrator is not running" in output
    assert "strata run orchestrator" in output


async def test_a_service_that_never_started_is_named(amqp_url: str, namespace: str) -> None:
    env = dict(os.environ)
    env.update(STRATA_AMQP_URL=amqp_url, STRATA_NAMESPACE=namespace, COLUMNS="200")
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="cli-test")
    try:
        code, output = await strata(env, "pool", "list", *LONG)
    finally:
        await transport.delete_namespace()  # the CLI declared the namespace's fixed exchanges and queues
    assert code == 1, output
    assert f"the storage service is not running (it never started in namespace {namespace})" in output


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("amqp://guest:not-the-password@127.0.0.1:5672/", "ACCESS_REFUSED"),
        ("amqp://guest:guest@127.0.0.1:1/", "Connect call failed"),
    ],
)
async def test_a_broker_that_refuses_or_is_not_there_is_one_line(amqp_url: str, url: str, said: str) -> None:
    env = {**os.environ, "STRATA_AMQP_URL": url, "STRATA_NAMESPACE": "nowhere", "COLUMNS": "300"}
    env.pop("STRATA_PUBLISH_OUTAGE_BOUND", None)
    code, output = await strata(env, "pool", "list", *LONG)
    assert code == 1, output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("BrokerUnavailable: RabbitMQ at")
    assert said in lines[0]
    assert "not-the-password" not in output
