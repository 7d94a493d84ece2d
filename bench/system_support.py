"""What the benchmarks that drive the running services share: the servers they use, the daemons started in the
bench's process on a database and a namespace of its own (removed afterwards), a client to send commands with, and
the small tools (a timed action after a flush of dirty pages, a file of random bytes, a tool run that fails loudly).
"""

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from schemas import Event, Message
from services.agent.settings import AgentSettings
from services.cli.sending import Client
from services.image.settings import ImageSettings
from services.runtime.daemon import Settings
from services.runtime.settings import RuntimeSettings
from services.stack import System

MIB = 1024 * 1024
HOST, CLUSTER = "bench-host", "bench-cluster"
AMQP_URL = os.environ.get("STRATA_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_URL = os.environ.get("STRATA_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def run(*args: str) -> None:
    """Run a tool, failing loudly."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {err.decode()}")


async def seconds(action: Callable[[], Awaitable[object]]) -> float:
    """Seconds `action` takes, after flushing dirty pages so that no run pays for the previous one's writes."""
    await asyncio.to_thread(os.sync)
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


def make_random_raw(path: Path, size_mib: int) -> None:
    """A file of `size_mib` MiB of random bytes (nothing for compression or deduplication to gain)."""
    with path.open("wb") as raw:
        for _ in range(size_mib):
            raw.write(os.urandom(MIB))


async def send(client: Client, command: Message, success: type[Event], failure: type[Event]) -> Event:
    """Send a command and wait for its outcome (an hour at most: a bench waits for big copies)."""
    return await client.send(command, (success,), (failure,), timeout=3600.0)


@asynccontextmanager
async def running_system(workdir: Path, only: Sequence[str]) -> AsyncIterator[Client]:
    """The daemons `only` in this process on a database and a namespace of the bench's own (an agent on
    HOST/CLUSTER, the image service staging under `workdir`); a client of them; everything removed afterwards."""
    name = f"strata_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(DATABASE_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database_url = urlunsplit(urlsplit(DATABASE_URL)._replace(path=f"/{name}"))
    transport = RabbitTransport(
        BusSettings(amqp_url=AMQP_URL, namespace=f"bench{uuid.uuid4().hex[:8]}"), purpose="bench"
    )
    settings = Settings(
        RuntimeSettings(secret_key_file=workdir / "secret.key", log_level="ERROR"),
        AgentSettings(host=HOST, cluster=CLUSTER),
        ImageSettings(staging_dir=workdir / "image-staging"),
    )
    system = await System.start(database_url, transport, settings=settings, relay_poll=0.1, only=tuple(only))
    try:
        async with Client(transport, owns_transport=False) as client:
            yield client
    finally:
        await system.stop()
        await transport.delete_namespace()
        admin = await asyncpg.connect(DATABASE_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
