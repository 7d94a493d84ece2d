"""`strata demo`: the whole system in one process, telling its story."""

import asyncio

import typer
from rich.console import Console

console = Console()


def demo() -> None:
    """Run the demo story on the embedded default (in-memory bus, embedded PostgreSQL)."""
    from services.demo import run_demo

    ok = asyncio.run(run_demo(console))
    if not ok:
        raise typer.Exit(1)
