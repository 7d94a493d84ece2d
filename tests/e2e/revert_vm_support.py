"""The revert-VM e2e cloud: storage, snapshot, orchestrator and agent daemons, each its own process, on the real
RabbitMQ and PostgreSQL, with a qcow2fs pool in a temporary directory and libvirt's test driver.

The VM is the test driver's built-in domain `test` (running when the driver starts): the agent's libvirt
connection holds the VM's state, so a restarted agent finds it running again. `Cloud` is the test's client: it
publishes commands, reads the services' tables and writes and reads volume data with qemu-io.
"""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from uuid import UUID

import asyncpg

from bus.facade import Bus
from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from schemas import Envelope
from schemas.errors import StrataError
from tests.helpers import assert_eventually

ROOT = Path(__file__).resolve().parents[2]
HOST, CLUSTER = "h1", "c1"
TEST_DOMAIN = UUID("6695eb01-f6a4-8304-79aa-97f2502e193f")  # libvirt test driver's built-in domain "test"
QUEUES = ("storage", "snapshot", "orchestrator", "orchestrator.outcomes", f"agent.{HOST}", f"agent.cluster.{CLUSTER}")


def bus_settings(namespace: str, amqp_url: str) -> BusSettings:
    """Short retry delays: a killed agent's commands wait in its queue, not in back-off."""
    return BusSettings(
        amqp_url=amqp_url,
        namespace=namespace,
        retry_delays=(0.2, 0.5, 1.0, 2.0),
        prefetch=16,
        delivery_limit=50,
        publish_outage_bound=15.0,
        reconnect_delay_max=0.5,
    )


@dataclass
class Daemon:
    """One daemon process, its log file and how to start it again."""

    name: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    def start(self, **extra_env: str) -> None:
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # the daemon under test, with this interpreter
            [sys.executable, "-m", "tests.e2e.revert_vm_daemons", self.name],
            cwd=ROOT,
            env={**self.env, **extra_env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """SIGKILL: no clean-up, no acks, no commit in flight."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._close_log()

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it hangs)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._close_log()

    def _close_log(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cloud:
    """The running daemons and the test's own connections."""

    database_url: str
    namespace: str
    pool_dir: Path
    daemons: dict[str, Daemon]
    transport: RabbitTransport
    db: "asyncpg.Pool[asyncpg.Record]"
    pool_id: UUID = field(default_factory=uuid.uuid4)
    zone_id: UUID = field(default_factory=uuid.uuid4)

    @property
    def bus(self) -> Bus:
        return Bus(self.transport)

    async def publish(self, payload: object, *, timeout: float = 30.0) -> Envelope:
        """Publish a command, retrying while its service's queue does not exist yet (a daemon starting)."""
        envelope = Envelope.wrap(payload, producer="e2e")  # type: ignore[arg-type]  # a registered message
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await self.bus.publish(envelope)
                return envelope
            except StrataError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def value(self, query: str, *args: object) -> object:
        return await self.db.fetchval(query, *args)

    async def rows(self, query: str, *args: object) -> list[asyncpg.Record]:
        return list(await self.db.fetch(query, *args))

    async def wait(self, condition: Callable[[], Awaitable[object]], what: str, timeout: float = 30.0) -> None:
        typed: Callable[[], Awaitable[object] | object] = condition
        try:
            await assert_eventually(typed, timeout=timeout, interval=0.05, what=what)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{await self.story()}") from None

    async def story(self) -> str:
        """What the services did, for a failure's message: the journal of every schema, and the outbox rows unsent."""
        lines = [f"daemon logs in {self.pool_dir.parent}; what the journals hold:"]
        schemas = [
            row["nspname"] for row in await self.rows("SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_'")
        ]
        for schema in schemas:
            if not await self.value("SELECT to_regclass($1) IS NOT NULL", f"{schema}.journal"):
                continue
            for row in await self.rows(
                f"SELECT recorded_at, type, producer FROM {schema}.journal ORDER BY recorded_at"
            ):
                lines.append(
                    f"  {schema}.journal {row['recorded_at']:%H:%M:%S.%f} {row['type']} from {row['producer']}"
                )
            for row in await self.rows(
                f"SELECT type, routing_key, attempts, last_error FROM {schema}.outbox WHERE sent_at IS NULL"
            ):
                lines.append(f"  {schema}.outbox unsent {dict(row)}")
        return "\n".join(lines)

    def restart_agent(self, *, faults: tuple[str, ...] = (), kill: bool = False) -> None:
        """A new agent process, with plugin fault points armed (each crashes its operation once)."""
        agent = self.daemons["agent"]
        if kill:
            agent.kill()
        else:
            agent.stop()
        agent.start(STRATA_AGENT_FAULT_POINTS=json.dumps(list(faults)))

    def assert_alive(self) -> None:
        dead = [name for name, daemon in self.daemons.items() if not daemon.alive]
        assert not dead, f"daemons died: {dead}; see the logs in {self.pool_dir.parent}"


def daemon_env(database_url: str, amqp_url: str, namespace: str) -> dict[str, str]:
    """The environment every daemon reads its settings from."""
    settings = bus_settings(namespace, amqp_url)
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "STRATA_DATABASE_URL": database_url,
        "STRATA_AMQP_URL": amqp_url,
        "STRATA_NAMESPACE": namespace,
        "STRATA_RETRY_DELAYS": json.dumps(list(settings.retry_delays)),
        "STRATA_DELIVERY_LIMIT": str(settings.delivery_limit),
        "STRATA_RECONNECT_DELAY_MAX": str(settings.reconnect_delay_max),
        "STRATA_HEALTH_PORT": "0",
        "STRATA_SHUTDOWN_GRACE_SECONDS": "5",
        "STRATA_AGENT_HOST": HOST,
        "STRATA_AGENT_CLUSTER": CLUSTER,
        "STRATA_AGENT_LIBVIRT_URI": "test:///default",
    }


async def qemu_io(path: str, command: str) -> str:
    """Run one qemu-io command on an image; fail with its output if it fails."""
    process = await asyncio.create_subprocess_exec(
        "qemu-io",
        "-f",
        "qcow2",
        "-c",
        command,
        path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"qemu-io {command!r} on {path} failed: {text}"
    return text


async def write_pattern(path: str, pattern: int) -> None:
    """Fill the first 64 KiB of the volume with `pattern`."""
    await qemu_io(path, f"write -P {pattern:#x} 0 64k")


async def holds_pattern(path: str, pattern: int) -> bool:
    """Whether the first 64 KiB of the volume hold `pattern`."""
    output = await qemu_io(path, f"read -P {pattern:#x} 0 64k")
    return "Pattern verification failed" not in output
