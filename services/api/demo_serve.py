"""`strata demo --serve`: after its story, the demo keeps its system running and serves the web console and the API
on STRATA_API_HOST:STRATA_API_PORT, with an admin key made for the occasion, until Ctrl-C."""

import asyncio
import signal
from collections.abc import Sequence

from rich.console import Console

from services.api.context import ApiContext
from services.api.keys import Role
from services.api.server import ApiServer
from services.runtime.daemon import Service


def api_server(services: Sequence[tuple[str, Service]]) -> ApiServer | None:
    """The API's HTTP server among the running daemons, if the API runs."""
    return next((part for _, service in services for part in service.parts if isinstance(part, ApiServer)), None)


async def serve_console(console: Console, services: Sequence[tuple[str, Service]]) -> None:
    """Print where the console is and a key to sign in with, then wait for SIGINT or SIGTERM."""
    server = api_server(services)
    if server is None:
        console.print("[red]the API daemon is not running in this demo[/red]")
        return
    context = server.app.state.context
    assert isinstance(context, ApiContext)
    _, key = await context.keys.create("demo-admin", Role.ADMIN, created_by="strata demo --serve")
    console.print(f"\n[bold]The web console:[/bold] http://{server.host}:{server.port}/  (API: /api/v1/openapi.json)")
    console.print(f"Sign in with this admin key (made for this demo): [bold]{key}[/bold]")
    console.print("Ctrl-C stops the demo.")
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
