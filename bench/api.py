"""The HTTP API against the CLI and a bare FastAPI handler, in the same run.

    python bench/api.py [--clients 8] [--seconds 5] [--volumes 24]   (STRATA_AMQP_URL, STRATA_DATABASE_URL)

prints one JSON line: {"bench": "api", "get_pools_rps": ..., "get_pools_uncached_rps": ..., "bare_fastapi_rps": ...,
"cli_pool_list_per_s": ..., "volume_create_api_per_s": ..., "volume_create_cli_per_s": ..., ...}

The storage, snapshot, orchestrator and API daemons and an agent run in this process on RabbitMQ and PostgreSQL (a
database and a namespace of the bench's own), with one qcow2fs pool. Measured with `--clients` concurrent clients:
- `GET /api/v1/pools` for `--seconds` (key checked, a `pool.list` query over the bus, JSON out), half of it with the
  key check and the check that the storage service consumes remembered for STRATA_API_KEY_CACHE_SECONDS and
  STRATA_API_OWNER_CHECK_SECONDS (the daemon's defaults) and half with both made on every request (`uncached`, as
  before they were remembered), in interleaved halves, and the same with one client (requests back to back: the
  inverse of their latency); against the same
  JSON list answered by a bare FastAPI handler on uvicorn in this process (no key, no bus), and against
  `strata pool list --json` run as processes, as an operator runs it;
- a volume created through the API and followed to its outcome (POST /volumes, then the operation polled until it
  ended), `--volumes` of them, against `strata volume create NAME 1M --pool P --json` processes.
The load generator shares the process (and the machine's two cores) with what it measures, for every figure alike.
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import uvicorn
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from services.agent.settings import AgentSettings
from services.api.context import ApiContext
from services.api.demo_serve import api_server
from services.api.keys import Role
from services.api.settings import ApiSettings
from services.runtime.daemon import Settings
from services.runtime.logs import configure_logging
from services.runtime.settings import RuntimeSettings
from services.stack import System

HOST, CLUSTER = "bench-host", "bench-cluster"
AMQP_URL = os.environ.get("STRATA_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_URL = os.environ.get("STRATA_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
STRATA = str(Path(sys.executable).parent / "strata")


async def rate(clients: int, seconds: float, one: Callable[[], Awaitable[None]]) -> float:
    """Calls of `one` per second, `clients` at a time, for `seconds`."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await one()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return done / (time.perf_counter() - started)


async def count_rate(clients: int, total: int, one: Callable[[int], Awaitable[None]]) -> float:
    """`total` calls of `one(index)`, `clients` at a time: calls per second."""
    queue = list(range(total))

    async def worker() -> None:
        while queue:
            await one(queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return total / (time.perf_counter() - started)


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 60.0) -> None:
    """Wait for `check` to hold; fail loudly after `seconds`."""
    deadline = time.perf_counter() + seconds
    while not await check():
        if time.perf_counter() > deadline:
            raise SystemExit(f"{what}: not within {seconds:g}s")
        await asyncio.sleep(0.01)


async def strata(env: dict[str, str], *args: str) -> None:
    """One `strata` command as a process; fail loudly."""
    process = await asyncio.create_subprocess_exec(
        STRATA, *args, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"strata {' '.join(args)} failed: {err.decode()}")


async def bare_server(pools: object) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """The baseline: a FastAPI handler answering the same JSON, on uvicorn in this process."""
    app = FastAPI()

    @app.get("/api/v1/pools")
    async def list_pools() -> object:
        return pools

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await until(started, "the bare server started")
    return server, task, server.servers[0].sockets[0].getsockname()[1]


async def figures(clients: int, seconds: float, volumes: int, workdir: Path) -> dict[str, float]:
    name = f"strata_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(DATABASE_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database_url = urlunsplit(urlsplit(DATABASE_URL)._replace(path=f"/{name}"))
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    transport = RabbitTransport(BusSettings(amqp_url=AMQP_URL, namespace=namespace), purpose="bench")
    settings = Settings(
        RuntimeSettings(secret_key_file=workdir / "secret.key", log_level="ERROR"),
        AgentSettings(host=HOST, cluster=CLUSTER),
        ApiSettings(port=0),  # the key and owner checks remembered for the defaults' periods
    )
    only = ("storage", "snapshot", "orchestrator", "agent", "api")
    system = await System.start(database_url, transport, settings=settings, relay_poll=0.1, only=only)
    env = {
        **os.environ,
        "STRATA_AMQP_URL": AMQP_URL,
        "STRATA_NAMESPACE": namespace,
        "STRATA_DATABASE_URL": database_url,
        "STRATA_SECRET_KEY_FILE": str(workdir / "secret.key"),
    }
    try:
        server = api_server(system.services)
        assert server is not None
        context = server.app.state.context
        assert isinstance(context, ApiContext)
        _, key = await context.keys.create("bench", Role.OPERATOR, created_by="bench")
        base = f"http://127.0.0.1:{server.port}"
        limits = httpx.Limits(max_connections=clients * 2)
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120, limits=limits
        ) as api:

            async def host_known() -> bool:
                return bool((await api.get("/api/v1/hosts")).json())

            await until(host_known, "the agent's first heartbeat")
            (workdir / "pool").mkdir()
            body = {"name": "bench", "plugin": "qcow2fs", "config": {"path": str(workdir / "pool")}}
            added = await api.post("/api/v1/pools", json={**body, "scope": "cluster", "cluster": CLUSTER})
            await followed(api, added)
            pools = (await api.get("/api/v1/pools")).json()

            async def get_pools() -> None:
                answer = await api.get("/api/v1/pools")
                assert answer.status_code == 200

            await rate(clients, 1.0, get_pools)  # warm-up: connections, prepared statements
            remembered = (context.keys.cache_seconds, context.owners.seconds)

            def remembering(on: bool) -> None:  # the key check and the owner check: cached, or made every request
                context.keys.cache_seconds, context.owners.seconds = remembered if on else (0.0, 0.0)

            phases: dict[tuple[bool, int], list[float]] = {}
            for on in (False, True, False, True):  # interleaved, so a load that drifts weighs on both alike
                remembering(on)
                for together in (clients, 1):  # 1: one client's requests back to back (their latency)
                    phases.setdefault((on, together), []).append(await rate(together, seconds / 2, get_pools))
            means = {phase: sum(values) / len(values) for phase, values in phases.items()}
            api_uncached_rps, api_rps = means[False, clients], means[True, clients]
            one_uncached_rps, one_rps = means[False, 1], means[True, 1]
            bare, task, port = await bare_server(pools)
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as plain:

                    async def get_bare() -> None:
                        assert (await plain.get("/api/v1/pools")).status_code == 200

                    await rate(clients, 1.0, get_bare)
                    bare_rps = await rate(clients, seconds, get_bare)
            finally:
                bare.should_exit = True
                await task
            cli_rps = await count_rate(clients, clients * 2, lambda _: strata(env, "pool", "list", "--json"))

            async def create_api(index: int) -> None:
                answer = await api.post("/api/v1/volumes", json={"name": f"a{index}", "size": "1M", "pool": "bench"})
                await followed(api, answer)

            await create_api(-1)
            api_creates = await count_rate(clients, volumes, create_api)
            cli_creates = await count_rate(
                clients, volumes, lambda index: strata(env, "volume", "create", f"c{index}", "1M", "--pool", "bench")
            )
    finally:
        await system.stop()
        await transport.delete_namespace()
        admin = await asyncpg.connect(DATABASE_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    return {
        "get_pools_rps": api_rps,
        "get_pools_uncached_rps": api_uncached_rps,
        "get_pools_one_client_rps": one_rps,
        "get_pools_one_client_uncached_rps": one_uncached_rps,
        "bare_fastapi_rps": bare_rps,
        "cli_pool_list_per_s": cli_rps,
        "volume_create_api_per_s": api_creates,
        "volume_create_cli_per_s": cli_creates,
    }


async def followed(api: httpx.AsyncClient, answer: httpx.Response) -> None:
    """Poll a 202's operation until it ended; fail loudly unless it succeeded."""
    if answer.status_code != 202:
        raise SystemExit(f"{answer.request.url}: {answer.status_code} {answer.text}")
    while True:
        operation = (await api.get(answer.headers["location"])).json()
        if operation["status"] == "succeeded":
            return
        if operation["status"] == "failed":
            raise SystemExit(f"operation failed: {operation['error']}")
        await asyncio.sleep(0.02)


async def main(clients: int, seconds: float, volumes: int) -> dict[str, object]:
    configure_logging("bench", level="ERROR", json=False)  # stdout holds the one JSON line
    with tempfile.TemporaryDirectory(prefix="strata-bench-api-") as workdir:
        measured = await figures(clients, seconds, volumes, Path(workdir))
    return {
        "bench": "api",
        "clients": clients,
        **{key: round(value, 1) for key, value in measured.items()},
        "get_pools_ratio_vs_bare_fastapi": round(measured["get_pools_rps"] / measured["bare_fastapi_rps"], 3),
        "get_pools_uncached_ratio_vs_bare_fastapi": round(
            measured["get_pools_uncached_rps"] / measured["bare_fastapi_rps"], 3
        ),
        "get_pools_ratio_vs_cli": round(measured["get_pools_rps"] / measured["cli_pool_list_per_s"], 1),
        "volume_create_ratio_api_vs_cli": round(
            measured["volume_create_api_per_s"] / measured["volume_create_cli_per_s"], 2
        ),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each GET /pools rate is measured")
    parser.add_argument("--volumes", type=int, default=24, help="volumes created each way")
    options = parser.parse_args()
    print(json.dumps(asyncio.run(main(options.clients, options.seconds, options.volumes))))
