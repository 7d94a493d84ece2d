"""What the CLI tests share: every service running in the test's process (services/stack, as `strata up` runs
them) in the test's namespace and database (the `strata_env` fixture, in conftest.py), and `strata` run as a user
runs it, a process of its own pointed at them by STRATA_* variables.
"""

import asyncio
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from services.agent.settings import AgentSettings
from services.runtime.daemon import Settings
from services.stack import System

STRATA = str(Path(sys.executable).parent / "strata")
HOST, CLUSTER = "cli-host", "cli-cluster"


@asynccontextmanager
async def running_services(amqp_url: str, namespace: str, database_url: str) -> AsyncIterator[dict[str, str]]:
    """Every service running; the environment that points `strata` at them (the `strata_env` fixture)."""
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
