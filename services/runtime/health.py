"""A tiny HTTP server for `/healthz` and Prometheus `/metrics`, on asyncio (no extra thread, no framework).

`/healthz` runs the daemon's checks (each an async callable answering True when healthy, with a deadline) and
answers 200 when all pass, 503 otherwise, with a JSON body naming each check's outcome. `/metrics` first runs the
daemon's refreshers (gauges read from the database or the broker at scrape time, each with the same deadline; one
that fails leaves its gauges as they were), then renders the daemon's own `CollectorRegistry` in Prometheus' text
format. A failing check reports only the error's class:
its message could quote a connection string.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Self

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.runtime.metrics import MessageMetrics

log = structlog.get_logger(__name__)
HealthCheck = Callable[[], Awaitable[bool]]
Refresh = Callable[[], Awaitable[None]]
_REQUEST_TIMEOUT = 5.0
_MAX_HEADER_LINES = 100
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    """Serves `/healthz` and `/metrics` for one daemon. Use `async with HealthServer(...) as server:`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: CollectorRegistry | None = None,
        checks: Mapping[str, HealthCheck] | None = None,
        check_timeout: float = 2.0,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        # Every consumer of this process reports the messages it handles to this server's registry.
        self.message_metrics = MessageMetrics(self.registry)
        self._host = host
        self._port = port
        self._checks: dict[str, HealthCheck] = dict(checks or {})
        self._refreshers: list[Refresh] = []
        self._check_timeout = check_timeout
        self._server: asyncio.Server | None = None

    def add_check(self, name: str, check: HealthCheck) -> None:
        """Add a named check to `/healthz` (a consumer connected, the database answering, ...)."""
        self._checks[name] = check

    def add_refresh(self, refresh: Refresh) -> None:
        """Run `refresh` before each `/metrics` answer (it sets gauges of this server's registry)."""
        self._refreshers.append(refresh)

    @property
    def port(self) -> int:
        """The port it listens on (the chosen one when started with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the health server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Listen; raises OSError if the address is taken."""
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def close(self) -> None:
        """Stop listening and wait for open requests to end."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _error: BaseException | None, _trace: TracebackType | None
    ) -> None:
        await self.close()

    async def health(self) -> tuple[bool, dict[str, str]]:
        """Run every check at once; return whether all passed and each one's outcome."""
        names = list(self._checks)
        outcomes = await asyncio.gather(*(self._run_check(self._checks[name]) for name in names))
        results = dict(zip(names, outcomes, strict=True))
        return all(outcome == "ok" for outcome in outcomes), results

    async def _run_check(self, check: HealthCheck) -> str:
        try:
            healthy = await asyncio.wait_for(check(), self._check_timeout)
        except TimeoutError:
            return f"timed out after {self._check_timeout:g}s"
        except Exception as error:
            return f"error: {type(error).__name__}"
        return "ok" if healthy else "failing"

    async def _run_refresh(self, refresh: Refresh) -> None:
        try:
            await asyncio.wait_for(refresh(), self._check_timeout)
        except Exception as error:  # a gauge left stale must not cost the other metrics
            log.warning(
                "metrics refresh failed", refresh=getattr(refresh, "__qualname__", ""), error_class=type(error).__name__
            )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, (status, content_type, body) = await asyncio.wait_for(self._answer(reader), _REQUEST_TIMEOUT)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a client that stalls or hangs up gets nothing; the server goes on
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, tuple[int, str, bytes]]:
        request_line = (await reader.readline()).decode("latin-1").split()
        for _ in range(_MAX_HEADER_LINES):
            if (await reader.readline()) in (b"\r\n", b"\n", b""):
                break
        if len(request_line) != 3:
            return "", (400, "text/plain; charset=utf-8", b"bad request\n")
        method, target, _version = request_line
        return method, await self._route(method, target.split("?", 1)[0])

    async def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if path not in ("/healthz", "/metrics"):
            return 404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"only GET\n"
        if path == "/metrics":
            await asyncio.gather(*(self._run_refresh(refresh) for refresh in self._refreshers))
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        healthy, results = await self.health()
        body = json.dumps({"status": "ok" if healthy else "failing", "checks": results}).encode()
        return (200 if healthy else 503), "application/json", body
