"""A daemon as an operator starts it: `strata run NAME` as a process of its own, its health asked over HTTP.

`DaemonProcess.start` waits for the daemon's "running" log line (JSON on stderr), which names the health port it
chose (`STRATA_HEALTH_PORT=0`), and keeps reading its log meanwhile so that the pipe never fills.
"""

import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from services.daemons import every_daemon

STRATA = str(Path(sys.executable).parent / "strata")
ROOT = Path(__file__).resolve().parents[2]
HOST, CLUSTER = "d1", "dc1"
START_TIMEOUT = 90.0  # an upper bound on a loaded machine (migrations, broker, plugins), not an expected duration


def daemon_env(database_url: str, amqp_url: str, namespace: str, **extra: str) -> dict[str, str]:
    """The environment a daemon reads its settings from: this test's servers, any free health port, JSON logs."""
    return {
        **os.environ,
        "STRATA_DATABASE_URL": database_url,
        "STRATA_AMQP_URL": amqp_url,
        "STRATA_NAMESPACE": namespace,
        "STRATA_HEALTH_PORT": "0",
        "STRATA_API_PORT": "0",  # the API daemon's port: any free one, as for health
        "STRATA_LOG_JSON": "true",
        "STRATA_SHUTDOWN_GRACE_SECONDS": "5",
        "STRATA_AGENT_HOST": HOST,
        "STRATA_AGENT_CLUSTER": CLUSTER,
        "STRATA_AGENT_LIBVIRT_URI": "test:///default",
        **extra,
    }


def every_daemon_queue(namespace: str) -> list[str]:
    """The full names of every declared daemon's queues in `namespace`: a daemon declares them all at start."""
    return [f"{namespace}.{queue.name}" for daemon in every_daemon() for queue in daemon.queues]


async def remove_namespace(amqp_url: str, namespace: str) -> None:
    """Delete every queue the daemons declare in `namespace` (the shared topology and this test's agent) and its
    exchanges."""
    queues = [*every_daemon_queue(namespace), f"{namespace}.agent.{HOST}", f"{namespace}.agent.cluster.{CLUSTER}"]
    queues.append(f"{namespace}.bridge.cloudstack")  # the bridge's queue on CloudStack's exchange
    await RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace)).delete_namespace(queues)


@dataclass
class DaemonProcess:
    """One running `strata` daemon and what it logged."""

    process: asyncio.subprocess.Process
    health_port: int
    log: list[dict[str, Any]] = field(default_factory=list)  # JSON log lines: values of every kind
    reader: "asyncio.Task[None] | None" = None

    @classmethod
    async def start(cls, env: dict[str, str], *args: str, program: Sequence[str] = (STRATA,)) -> "DaemonProcess":
        """Run `strata ARGS` (or `program ARGS`, another runner of daemons) and wait until it says it is running;
        fail with its log if it exits first."""
        process = await asyncio.create_subprocess_exec(
            *program, *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        log: list[dict[str, Any]] = []
        running: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(_read_log(process, log, running))
        try:
            port = await asyncio.wait_for(asyncio.shield(running), START_TIMEOUT)
        except (TimeoutError, EOFError) as error:
            await _end(process)
            await reader
            raise AssertionError(
                f"`strata {' '.join(args)}` did not start ({error!r}); its log:\n{_show(log)}"
            ) from None
        return cls(process, port, log, reader)

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        """GET `path` on the daemon's health server: the status and the JSON body."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.health_port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("ascii"))
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 30)
        finally:
            writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        return status, json.loads(body) if body.startswith(b"{") else {"text": body.decode()}

    async def terminate(self) -> int:
        """SIGTERM (by pid: see tests.e2e.test_sagas_crash) and wait for the exit status."""
        os.kill(self.process.pid, signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 60)
        if self.reader is not None:
            await self.reader
        return code

    async def kill(self) -> None:
        """End it whatever its state (a test's clean-up)."""
        await _end(self.process)
        if self.reader is not None:
            await self.reader

    def logged(self, event: str) -> bool:
        """Whether it logged a line with this message."""
        return any(line.get("event") == event for line in self.log)

    def show_log(self) -> str:
        """Its log, for a failure's message."""
        return _show(self.log)


async def _read_log(
    process: asyncio.subprocess.Process, log: list[dict[str, Any]], running: "asyncio.Future[int]"
) -> None:
    assert process.stderr is not None
    async for raw in process.stderr:
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            line = {"event": raw.decode(errors="replace").rstrip()}
        log.append(line)
        if line.get("event") == "running" and not running.done():
            running.set_result(int(line["health_port"]))
    if not running.done():
        running.set_exception(EOFError(f"exited with {await process.wait()}"))


async def _end(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()


def _show(log: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(line, default=str) for line in log[-60:])
