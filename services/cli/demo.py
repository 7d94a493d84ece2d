"""`strata demo`: the whole system in one process, telling its story."""

import asyncio
from typing import Annotated

import typer

from services.cli.talking import make_console

console = make_console()


def demo(
    serve: Annotated[
        bool,
        typer.Option(
            "--serve", help="After the story, serve the web console and the API (STRATA_API_PORT) until Ctrl-C."
        ),
    ] = False,
) -> None:
    """Run the demo story on the embedded default (in-memory bus, embedded PostgreSQL)."""
    from services.demo import run_demo

    ok = asyncio.run(run_demo(console, serve=serve))
    if not ok:
        raise typer.Exit(1)
