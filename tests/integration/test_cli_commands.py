"""The operator CLI as a user runs it (a subprocess) against every service on RabbitMQ and PostgreSQL.

The services run in this test's process (services/stack, as `strata up` runs them) in the test's namespace and
database; each `strata` command is a process of its own, pointed at them by STRATA_* variables.
"""

import asyncio
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from services.agent.settings import AgentSettings
from services.runtime.daemon import Settings
from services.stack import System

pytestmark = pytest.mark.integration
STRATA = str(Path(sys.executable).parent / "strata")
HOST, CLUSTER = "cli-host", "cli-cluster"


@pytest.fixture
async def strata_env(amqp_url: str, namespace: str, database_url: str) -> AsyncIterator[dict[str, str]]:
    """Every service running; the environment that points `strata` at them."""
    if shutil.which("qemu-img") is None:
        pytest.fail("qemu-img is missing: apt-get install qemu-utils", pytrace=False)
    # The CLI declares the namespace's retry queues with the default settings: the services must agree.
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="cli-test")
    system = await System.start(
        database_url,
        transport,
        settings=Settings(AgentSettings(host=HOST, cluster=CLUSTER)),
        relay_poll=0.1,
    )
    env = dict(os.environ)
    env.update(STRATA_AMQP_URL=amqp_url, STRATA_NAMESPACE=namespace, STRATA_DATABASE_URL=database_url, COLUMNS="200")
    try:
        yield env
    finally:
        await system.stop()
        await transport.delete_namespace()


async def strata(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `strata ARGS`; return its exit status and its output (stdout then stderr)."""
    code, out, err = await strata_streams(env, *args)
    return code, out + err


async def strata_streams(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run `strata ARGS`; return its exit status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        STRATA, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def strata_json(env: dict[str, str], *args: str) -> Any:  # Any: the command's JSON output
    code, out, err = await strata_streams(env, *args, "--json")
    assert code == 0, out + err
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        pytest.fail(f"`strata {' '.join(args)} --json` printed more than JSON:\n{out}", pytrace=False)


async def test_pool_volume_and_snapshot_life_cycle(strata_env: dict[str, str], tmp_path: Path) -> None:
    env = strata_env
    placement = ["--scope", "host", "--host", HOST, "--cluster", CLUSTER]
    added = await strata_json(env, "pool", "add", "p1", "--plugin", "qcow2fs", "-c", f"path={tmp_path}", *placement)
    assert added["name"] == "p1"
    assert "config" not in added

    pools = await strata_json(env, "pool", "list")
    assert [(pool["name"], pool["state"]) for pool in pools] == [("p1", "Up")]

    created = await strata_json(env, "volume", "create", "v1", "16M", "--host", HOST, "--cluster", CLUSTER)
    assert created["pool_id"] == added["pool_id"]
    shown = await strata_json(env, "volume", "show", "v1")
    assert (shown["state"], shown["size_bytes"]) == ("Ready", 16 * 1024 * 1024)

    code, output = await strata(env, "pool", "delete", "p1")
    assert code == 1
    assert "FailedPrecondition" in output
    assert "still holds 1 volume" in output
    assert (await strata_json(env, "pool", "show", "p1"))["state"] == "Up"  # the refusal changed nothing

    snapshot = await strata_json(env, "snapshot", "create", "v1", "--name", "s1")
    listed = await strata_json(env, "snapshot", "list", "--volume", created["volume_id"])
    assert [row["snapshot_id"] for row in listed["snapshots"]] == [snapshot["snapshot_id"]]

    policy = await strata_json(
        env, "snapshot-policy", "create", "v1", "--interval", "DAILY", "--schedule", "30:02", "--max-snaps", "3"
    )
    policies = await strata_json(env, "snapshot-policy", "list")
    assert [row["policy_id"] for row in policies["policies"]] == [policy["policy_id"]]
    await strata_json(env, "snapshot-policy", "delete", policy["policy_id"])

    resized = await strata_json(env, "volume", "resize", "v1", "32M")
    assert resized["new_size_bytes"] == 32 * 1024 * 1024

    await strata_json(env, "snapshot", "delete", snapshot["snapshot_id"])
    await strata_json(env, "volume", "delete", "v1")
    assert (await strata_json(env, "pool", "disable", "p1"))["state"] == "Disabled"
    assert (await strata_json(env, "pool", "enable", "p1"))["state"] == "Up"
    assert (await strata_json(env, "pool", "disable", "p1"))["state"] == "Disabled"  # a pool is deleted disabled
    assert (await strata_json(env, "pool", "delete", "p1"))["state"] == "Removed"


async def test_a_listing_before_any_service_created_its_tables_is_a_clear_error(database_url: str) -> None:
    # The test's own database, with nothing migrated in it: no service has ever started against it.
    env = {**os.environ, "STRATA_DATABASE_URL": database_url}
    for listing in (["snapshot", "list"], ["snapshot-policy", "list"]):
        code, out = await strata(env, *listing)

        assert code == 1, out
        assert "FailedPrecondition" in out
        assert "does not exist" in out
        assert "Traceback" not in out
