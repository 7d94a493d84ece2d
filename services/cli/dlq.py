"""`strata dlq list|show|redrive|purge`: the dead letters of a namespace on RabbitMQ."""

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from schemas import registry
from schemas.errors import StrataError
from schemas.redact import mask_url_passwords, redact, redacted_body
from services.cli.talking import make_console

if TYPE_CHECKING:  # the bus is imported when a command runs, so that `strata --help` stays fast
    from bus.ports import DeadLetter
    from bus.rabbit import RabbitTransport

app = typer.Typer(help="Inspect, re-drive and purge dead letters (STRATA_AMQP_URL, STRATA_NAMESPACE).")
console = make_console()
T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AllOption = Annotated[bool, typer.Option("--all", help="Every dead letter of the namespace.")]
IdsArgument = Annotated[list[str] | None, typer.Argument(help="Message ids.", show_default=False)]


def _run(action: "Callable[[RabbitTransport], Awaitable[T]]") -> T:
    from bus.rabbit import RabbitTransport
    from services.cli.talking import bus_settings

    async def main() -> T:
        transport = RabbitTransport(bus_settings(), purpose="cli", declare_topology=False)
        await transport.start()
        try:
            return await action(transport)
        finally:
            await transport.close()

    try:
        return asyncio.run(main())
    except StrataError as error:
        console.print(f"[red]{type(error).__name__}:[/red] {error.message}")
        raise typer.Exit(1) from None


def _as_dict(letter: "DeadLetter", *, with_body: bool) -> dict[str, object]:
    """What is shown of a dead letter, with secrets masked (`schemas.redact`): a body by its message's schema and by
    name, headers and the reason (an error's text) by name."""
    message = letter.message
    described: dict[str, object] = {
        "message_id": message.message_id,
        "type": message.type,
        "origin_queue": letter.origin_queue,
        "error_class": letter.error_class,
        "attempts": letter.attempts,
        "reason": letter.reason,
        "correlation_id": message.correlation_id,
        "timestamp": message.timestamp.isoformat() if message.timestamp else None,
    }
    if with_body:
        from services.catalog import load_all_messages

        described["headers"] = dict(message.headers)
        load_all_messages()
        version = message.headers.get("version")
        described["body"] = redacted_body(
            message.type, version if isinstance(version, int) else None, message.body, registry
        )
    shown: dict[str, object] = redact(described)
    return shown


def _chosen(ids: list[str] | None, everything: bool) -> list[str] | None:
    """The message ids to act on, None for all; refuses to guess when neither or both are given."""
    if bool(ids) == everything:
        console.print("[red]name the message ids, or pass --all (not both)[/red]")
        raise typer.Exit(2)
    return None if everything else list(ids or [])


@app.command("list")
def list_dead(
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List the dead letters, oldest first, with why each died."""
    letters = _run(lambda transport: transport.list_dead(limit))
    if as_json:
        typer.echo(json.dumps([_as_dict(letter, with_body=False) for letter in letters]))
        return
    table = Table("message id", "type", "origin queue", "error", "attempts", "reason", title="dead letters")
    for letter in letters:
        message = letter.message
        table.add_row(
            message.message_id,
            message.type,
            letter.origin_queue,
            letter.error_class,
            str(letter.attempts),
            mask_url_passwords(letter.reason),
        )
    console.print(table)


@app.command("show")
def show(message_id: str, as_json: JsonOption = False) -> None:
    """Show one dead letter in full: headers and body."""
    letters = _run(lambda transport: transport.list_dead(100_000))
    found = [letter for letter in letters if letter.message.message_id == message_id]
    if not found:
        console.print(f"[red]no dead letter {message_id}[/red]")
        raise typer.Exit(1)
    described = _as_dict(found[0], with_body=True)
    if as_json:
        typer.echo(json.dumps(described))
    else:
        console.print_json(json.dumps(described))


@app.command("redrive")
def redrive(ids: IdsArgument = None, everything: AllOption = False, as_json: JsonOption = False) -> None:
    """Send dead letters back to the queue they came from, with their attempts reset."""
    chosen = _chosen(ids, everything)
    moved = _run(lambda transport: transport.redrive_dead(chosen))
    typer.echo(json.dumps({"redriven": moved}) if as_json else f"re-drove {moved} message(s)")


@app.command("purge")
def purge(
    ids: IdsArgument = None,
    everything: AllOption = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Purge every dead letter without asking first.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete dead letters for good. `--all` asks first unless `--yes` is given (without a terminal it refuses).

    Example: strata dlq purge --all --yes
    """
    chosen = _chosen(ids, everything)
    if chosen is None and not yes:
        if not sys.stdin.isatty():
            console.print("[red]purging every dead letter needs --yes when no one can answer the question[/red]")
            raise typer.Exit(1)
        if not typer.confirm("Delete every dead letter of this namespace for good?", default=False):
            raise typer.Exit(1)
    removed = _run(lambda transport: transport.purge_dead(chosen))
    typer.echo(json.dumps({"purged": removed}) if as_json else f"purged {removed} message(s)")
