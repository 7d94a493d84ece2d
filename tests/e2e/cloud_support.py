"""An e2e cloud of daemons as processes, for the coalesce and migration tests: the revert test's `Cloud` with
daemons started through `tests.e2e.killable_daemons` (an agent may be told to SIGKILL itself at a fault point)
and, optionally, a second host's agent.
"""

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg

from bus.rabbit import RabbitTransport
from schemas.storage import AddPool, PoolScope
from tests.e2e.daemon_processes import every_daemon_queue
from tests.e2e.revert_vm_support import (
    CLUSTER,
    HOST,
    Cloud,
    Daemon,
    bus_settings,
    daemon_env,
    qemu_io,
)
from tests.helpers import assert_eventually, queues_consumed

HOST2, CLUSTER2 = "h2", "c2"


@dataclass
class KillableDaemon(Daemon):
    """A daemon of kind `kind` (storage, snapshot, orchestrator, agent) run by `tests.e2e.killable_daemons`."""

    kind: str = "agent"

    def start(self, **extra_env: str) -> None:
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # the daemon under test, with this interpreter
            [sys.executable, "-m", "tests.e2e.killable_daemons", self.kind],
            cwd=Path(__file__).resolve().parents[2],
            env={**self.env, **extra_env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def start_killed_at(self, *points: str) -> None:
        """Start it so that it SIGKILLs itself the first time it reaches one of the plugin fault points."""
        self.start(STRATA_E2E_KILL_AT=json.dumps(list(points)))


@asynccontextmanager
async def open_cloud(
    postgres_url: str, amqp_url: str, base: Path, *, second_host: bool = False, more: tuple[str, ...] = ()
) -> AsyncIterator[Cloud]:
    """Start storage, snapshot, orchestrator and the agent of h1 (and of h2 in cluster c2, and the daemons `more`,
    each consuming its queue of the same name), each a process, on a database and namespace of their own; stop them
    and drop both on the way out."""
    name = f"strata_e2e_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    database_url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    namespace = f"t{uuid.uuid4().hex[:10]}"
    env = daemon_env(database_url, amqp_url, namespace)
    daemons: dict[str, Daemon] = {
        kind: KillableDaemon(kind, env, base / f"{kind}.log", kind=kind)
        for kind in ("storage", "snapshot", "orchestrator", "agent", *more)
    }
    queues = [
        "storage",
        "snapshot",
        "orchestrator",
        "orchestrator.outcomes",
        f"agent.{HOST}",
        f"agent.cluster.{CLUSTER}",
        *more,
    ]
    if second_host:
        env2 = {**env, "STRATA_AGENT_HOST": HOST2, "STRATA_AGENT_CLUSTER": CLUSTER2}
        daemons["agent2"] = KillableDaemon("agent2", env2, base / "agent2.log", kind="agent")
        queues += [f"agent.{HOST2}", f"agent.cluster.{CLUSTER2}"]
    queue_names = [f"{namespace}.{queue}" for queue in queues]
    pool_dir = base / "pool"
    pool_dir.mkdir()
    transport = RabbitTransport(bus_settings(namespace, amqp_url), purpose="e2e")
    await transport.start()
    db = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    cloud = Cloud(database_url, namespace, pool_dir, daemons, transport, db)
    try:
        for daemon in daemons.values():
            daemon.start()
        await assert_eventually(
            lambda: queues_consumed(amqp_url, queue_names), timeout=60, what="every daemon consuming"
        )
        yield cloud
    finally:
        for daemon in daemons.values():
            daemon.stop()
        await db.close()
        await transport.close()
        await transport.delete_namespace([*queue_names, *every_daemon_queue(namespace)])
        admin = await asyncpg.connect(postgres_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def add_pool(
    cloud: Cloud, pool_id: UUID, path: Path, *, host: str = HOST, cluster: str = CLUSTER, name: str = "e2e-pool"
) -> None:
    """Add a host-scoped qcow2fs pool on `path` and wait until it is Up and known to the snapshot service."""
    await asyncio.to_thread(path.mkdir, exist_ok=True)
    await cloud.publish(
        AddPool(
            pool_id=pool_id,
            name=name,
            plugin="qcow2fs",
            config={"path": str(path)},
            scope=PoolScope.HOST,
            zone_id=cloud.zone_id,
            cluster_id=cluster,
            host=host,
        ),
        timeout=60,
    )

    async def up() -> bool:
        state = await cloud.value("SELECT state FROM storage.pools WHERE pool_id = $1", pool_id)
        known = await cloud.value("SELECT count(*) FROM snapshot.pools WHERE pool_id = $1", pool_id)
        return state == "Up" and known == 1

    await cloud.wait(up, f"pool {name} is Up and known to the snapshot service", timeout=60)


async def write_mib(path: str, pattern: int, mib: int, *, offset_mib: int = 0) -> None:
    """Fill `mib` MiB of the volume from `offset_mib` with `pattern`."""
    await qemu_io(path, f"write -P {pattern:#x} {offset_mib}M {mib}M")


async def holds_mib(path: str, pattern: int, mib: int, *, offset_mib: int = 0) -> bool:
    """Whether `mib` MiB of the volume from `offset_mib` hold `pattern`."""
    output = await qemu_io(path, f"read -P {pattern:#x} {offset_mib}M {mib}M")
    return "Pattern verification failed" not in output


def allocated_bytes(directory: Path) -> int:
    """Bytes the files under `directory` take on disk (what the pool uses, whatever else shares the filesystem)."""
    return sum(path.stat().st_blocks * 512 for path in directory.rglob("*") if path.is_file())


async def strata(cloud: Cloud, *args: str) -> str:
    """Run the `strata` CLI as a user would, pointed at the cloud; fail with its output if it fails."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "strata"),
        *args,
        env={**cloud.daemons["storage"].env, "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"strata {' '.join(args)} failed: {text}"
    return text
