"""The API's HTTP server as a part of the daemon: uvicorn serving the app on the daemon's own event loop, started
and stopped with the daemon's other parts (its consumer), its port logged (STRATA_API_PORT=0 picks one)."""

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import structlog
import uvicorn
from fastapi import FastAPI

from schemas.errors import FailedPrecondition

log = structlog.get_logger(__name__)
START_SECONDS = 30.0


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the daemon's graceful shutdown owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """uvicorn on `host:port`, as a `Part`."""

    def __init__(self, app: FastAPI, *, host: str, port: int) -> None:
        self.app = app
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
        self.server = _QuietServer(config)
        self.host = host
        self.port = port
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve in the background; return once it listens (its port known), or raise why it could not.

        The socket is bound here, not by uvicorn, which would end the whole process (sys.exit) on a port in use."""
        listening = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listening.bind((self.host, self.port))
        except OSError as error:
            listening.close()
            raise FailedPrecondition(
                f"the API cannot listen on {self.host}:{self.port} ({error.strerror}): set STRATA_API_PORT "
                "(0 picks a free port) or STRATA_API_HOST",
                field="STRATA_API_PORT",
            ) from None
        self._task = asyncio.create_task(self.server.serve(sockets=[listening]))
        async with asyncio.timeout(START_SECONDS):
            while not self.server.started:
                if self._task.done():
                    self._task.result()
                    raise FailedPrecondition(f"the API could not listen on {self.host}:{self.port}", field="port")
                await asyncio.sleep(0.05)
        sockets = [sock for server in self.server.servers for sock in server.sockets]
        self.port = sockets[0].getsockname()[1] if sockets else self.port
        log.info("api listening", url=f"http://{self.host}:{self.port}/", api_port=self.port)

    async def stop(self) -> None:
        """Stop taking connections and let the ones open end."""
        if self._task is None:
            return
        self.server.should_exit = True
        await self._task
        self._task = None
