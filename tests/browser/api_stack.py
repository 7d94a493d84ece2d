"""The whole system in the test's process, as `strata up` runs it (the runner, real RabbitMQ and PostgreSQL, an
agent on libvirt's test driver, qcow2fs on a directory), with the API on a free port and a key of each role.

The registry is the installed plugins plus `netfs` (tests.browser.netfs_plugin), whose form has a password.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bus.postgres import RelaySettings
from bus.rabbit import RabbitTransport
from plugins.registry import load_plugins
from services.agent.settings import AgentSettings
from services.api.keys import Role
from services.api.server import ApiServer
from services.api.settings import ApiSettings
from services.daemons import declared
from services.image.settings import ImageSettings
from services.runtime.daemon import Settings
from services.runtime.runner import Runner
from services.runtime.settings import RuntimeSettings
from tests.browser.netfs_plugin import LOADED as NETFS
from tests.bus_fixtures import bus_settings
from tests.helpers import assert_eventually, queues_consumed

HOST, CLUSTER = "kvm-01", "rack-1"
UPLOAD_LIMIT = 8 << 20  # the API's upload limit in tests (STRATA_API_UPLOAD_MAX_BYTES)
DAEMONS = ("storage", "snapshot", "image", "backup", "orchestrator", "agent", "api")


@dataclass
class Stack:
    """A running stack: the API's address and a key per role."""

    runner: Runner
    base_url: str
    keys: dict[Role, str]
    pools_dir: Path

    def client(self, role: Role | None = None, *, key: str | None = None, **options: object) -> httpx.AsyncClient:
        """An HTTP client of the API, sending the key of `role` (or `key`; none if neither)."""
        key = key or (self.keys[role] if role else None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=60, **options)  # type: ignore[arg-type]


@asynccontextmanager
async def api_stack(database_url: str, amqp_url: str, namespace: str, pools_dir: Path) -> AsyncIterator[Stack]:
    """Start the stack; yield it once the agent registered its host; stop it and remove its queues."""
    bus = bus_settings(namespace, amqp_url).model_copy(update={"request_timeout": 15.0})
    settings = Settings(
        bus,
        RuntimeSettings(),
        AgentSettings(host=HOST, cluster=CLUSTER, heartbeat_seconds=1.0),
        ApiSettings(
            port=0, operation_timeout_seconds=120.0, upload_dir=pools_dir / "uploads", upload_max_bytes=UPLOAD_LIMIT
        ),
        ImageSettings(staging_dir=pools_dir / "image-staging"),
    )
    plugins = load_plugins()
    plugins.plugins["netfs"] = NETFS
    runner = await Runner.start(
        [declared(name) for name in DAEMONS],
        database_url=database_url,
        transport=RabbitTransport(bus, purpose="api-test"),
        settings=settings,
        plugins=plugins,
        relay=RelaySettings(poll_interval=0.1, backoff_initial=0.1, backoff_max=0.5),
    )
    try:
        server = next(part for _, service in runner.services for part in service.parts if isinstance(part, ApiServer))
        context = server.app.state.context
        keys = {role: (await context.keys.create(f"test-{role.value}", role, created_by="test"))[1] for role in Role}
        stack = Stack(runner, f"http://127.0.0.1:{server.port}", keys, pools_dir)
        queues = [f"{namespace}.{name}" for name in ("storage", "snapshot", "image", "backup", "orchestrator", "api")]
        await assert_eventually(lambda: queues_consumed(amqp_url, queues), timeout=30, what="every daemon consumes")
        async with stack.client(Role.VIEWER) as client:

            async def host_known() -> bool:
                answer = await client.get("/api/v1/hosts")
                return answer.status_code == 200 and any(h["identity"]["host"] == HOST for h in answer.json())

            await assert_eventually(host_known, timeout=30, what="the agent's host registered")
        yield stack
    finally:
        await runner.stop()
        queues = [f"{namespace}.{queue.name}" for name in DAEMONS for queue in declared(name).queues]
        queues += [f"{namespace}.agent.{HOST}", f"{namespace}.agent.cluster.{CLUSTER}"]
        await RabbitTransport(bus_settings(namespace, amqp_url)).delete_namespace(queues)


async def outcome(client: httpx.AsyncClient, answer: httpx.Response) -> dict[str, Any]:  # Any: JSON values
    """The operation a 202 answer started, once it ended (polled at its `Location`)."""
    assert answer.status_code == 202, answer.text

    async def ended() -> dict[str, Any] | None:  # Any: JSON values
        operation: dict[str, Any] = dict((await client.get(answer.headers["location"])).json())
        return operation if operation["status"] != "running" else None

    return dict(await assert_eventually(ended, timeout=120, interval=0.1, what="the operation ended") or {})


async def succeeded(client: httpx.AsyncClient, answer: httpx.Response) -> dict[str, Any]:  # Any: JSON values
    """`outcome`, which must have succeeded."""
    operation = await outcome(client, answer)
    assert operation["status"] == "succeeded", operation
    return operation


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    """Open a console session for `key` with a plain HTTP client (its cookie kept by the client)."""
    answer = await client.post("/login", data={"key": key, "next": "/pools"}, headers={"Origin": str(client.base_url)})
    assert answer.status_code == 303, answer.text
    return answer


def csrf_of(page: str) -> str:
    """The CSRF token a console page's forms carry."""
    marker = 'name="csrf_token" value="'
    return page.split(marker, 1)[1].split('"', 1)[0]


async def add_pool(client: httpx.AsyncClient, stack: Stack, name: str) -> dict[str, Any]:  # Any: JSON values
    """A qcow2fs pool of the cluster on a new directory of the stack's, added and followed until it succeeded."""
    (stack.pools_dir / name).mkdir(exist_ok=True)
    pool = {"name": name, "plugin": "qcow2fs", "config": {"path": str(stack.pools_dir / name)}, "cluster": CLUSTER}
    return await succeeded(client, await client.post("/api/v1/pools", json=pool))


async def add_repository(client: httpx.AsyncClient, stack: Stack, name: str) -> dict[str, Any]:  # Any: JSON values
    """An fsbackup backup repository on a new directory of the stack's, added and followed until it succeeded."""
    (stack.pools_dir / name).mkdir(exist_ok=True)
    repository = {"name": name, "plugin": "fsbackup", "config": {"path": str(stack.pools_dir / name)}}
    return await succeeded(client, await client.post("/api/v1/backup-repositories", json=repository))
