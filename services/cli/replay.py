"""`strata replay [FILTERS] [export FILE | redrive]`, `strata replay import|sandbox FILE`: what happened to an
operation, from the bus journal and the saga store (STRATA_DATABASE_URL, STRATA_BUS_SCHEMA, STRATA_SAGAS_SCHEMA);
the filters come first, then the subcommand, which acts on the selection."""

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from uuid import UUID

import typer

from schemas.errors import StrataError
from services.cli.history import _time  # the same checks of an ISO time with its zone
from services.cli.talking import make_console

if TYPE_CHECKING:  # the bus is imported when the command runs, so that `strata --help` stays fast
    from bus.postgres.pool import Pool
    from bus.settings import BusSettings
    from services.replay.reading import Recorded
    from services.replay.selection import Selection

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
T = TypeVar("T")
console = make_console()
notes = make_console(stderr=True)  # what is said besides the output asked for (which may be JSON on stdout)
app = typer.Typer(
    help="See what happened to an operation (timeline, causal tree, sequence diagram); export, sandbox, re-drive.",
    invoke_without_command=True,
    rich_markup_mode="rich",
)
Ids = Annotated[list[str] | None, typer.Option(show_default=False)]


def _uuids(values: list[str] | None, option: str) -> tuple[UUID, ...]:
    found = []
    for value in values or []:
        try:
            found.append(UUID(value))
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a UUID", param_hint=option) from None
    return tuple(found)


def _database() -> tuple[str, str, str]:
    from bus.postgres import DEFAULT_SCHEMA
    from sagas.postgres_store import DEFAULT_SCHEMA as SAGAS_SCHEMA

    return (
        os.environ.get("STRATA_DATABASE_URL", DEFAULT_DATABASE_URL),
        os.environ.get("STRATA_BUS_SCHEMA", DEFAULT_SCHEMA),
        os.environ.get("STRATA_SAGAS_SCHEMA", SAGAS_SCHEMA),
    )


def load_code() -> None:
    """Register every message and saga definition, so that payloads decode and sagas replay."""
    from services.replay.code import load_code as load

    load()


def fail(error: StrataError) -> typer.Exit:
    """Print `error` in one line (never a URL: it may hold a password) and return the exit to raise."""
    console.print(f"[red]{type(error).__name__}:[/red] {error.message}")
    return typer.Exit(1)


def run(work: "Callable[[Pool], Awaitable[T]]") -> T:
    """Run `work` on a pool of the journal's database; a StrataError is printed (never the URL) and exits 1."""
    from bus.postgres import create_pool

    load_code()

    async def main() -> T:
        pool = await create_pool(_database()[0], min_size=1, max_size=2)
        try:
            return await work(pool)
        finally:
            await pool.close()

    try:
        return asyncio.run(main())
    except StrataError as error:
        raise fail(error) from None


def _broker(work: "Callable[[BusSettings], Coroutine[Any, Any, T]]") -> T:
    """Run `work` with the CLI's bus settings (STRATA_AMQP_URL checked, never printed)."""
    from services.cli.talking import bus_settings

    try:
        return asyncio.run(work(bus_settings()))
    except StrataError as error:
        raise fail(error) from None


@app.callback()
def select(
    ctx: typer.Context,
    *,
    correlation: Annotated[
        list[str] | None, typer.Option("--correlation", metavar="ID", help="An operation's correlation id.")
    ] = None,
    saga: Annotated[list[str] | None, typer.Option("--saga", metavar="ID", help="A saga's id.")] = None,
    volume: Annotated[
        list[str] | None, typer.Option("--volume", metavar="ID", help="Operations naming this volume.")
    ] = None,
    pool: Annotated[list[str] | None, typer.Option("--pool", metavar="ID", help="Operations naming this pool.")] = None,
    snapshot: Annotated[
        list[str] | None, typer.Option("--snapshot", metavar="ID", help="Operations naming this snapshot.")
    ] = None,
    vm: Annotated[list[str] | None, typer.Option("--vm", metavar="ID", help="Operations naming this VM.")] = None,
    backup: Annotated[
        list[str] | None, typer.Option("--backup", metavar="ID", help="Operations naming this backup.")
    ] = None,
    template: Annotated[
        list[str] | None, typer.Option("--template", metavar="ID", help="Operations naming this template.")
    ] = None,
    message: Annotated[list[str] | None, typer.Option("--message", metavar="ID", help="This message (by id).")] = None,
    types: Annotated[list[str] | None, typer.Option("--type", metavar="TYPE", help="Only this message type.")] = None,
    service: Annotated[
        list[str] | None, typer.Option("--service", metavar="SERVICE", help="Only messages this service sent.")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", metavar="STATUS", help="Operations that: failed, dead-lettered, compensated."),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="TIME", help="Not before this ISO 8601 time (with zone).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="TIME", help="Not after this ISO 8601 time (with zone).")
    ] = None,
    naming_only: Annotated[
        bool, typer.Option("--naming-only", help="With an entity: only the messages naming it, not whole operations.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="At most this many messages.")] = 1000,
    after: Annotated[
        str | None,
        typer.Option("--after", metavar="CURSOR", help="Continue after this cursor (printed at a page's end)."),
    ] = None,
    tree: Annotated[bool, typer.Option("--tree", help="Show the causal tree instead of the timeline.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per message (payloads masked).")] = False,
    as_mermaid: Annotated[bool, typer.Option("--mermaid", help="Print the sequence diagram as Mermaid text.")] = False,
    diagram: Annotated[
        Path | None, typer.Option("--diagram", help="Write the sequence diagram: FILE.html (default), .svg or .mmd.")
    ] = None,
) -> None:
    """Select from the journal (filters combine; a repeated filter widens) and show it, oldest first in causal order."""
    from services.replay.broker import dead_letter_origins
    from services.replay.selection import Cursor, Selection, Status

    try:
        statuses = tuple(Status(value) for value in status or [])
    except ValueError:
        raise typer.BadParameter(
            f"{status} is not a status (one of {', '.join(s.value for s in Status)})", param_hint="--status"
        ) from None
    named = {"volume": volume, "pool": pool, "snapshot": snapshot, "vm": vm, "backup": backup, "template": template}
    entities = tuple((kind, entity_id) for kind, values in named.items() for entity_id in _uuids(values, f"--{kind}"))
    try:
        selection = Selection(
            correlation_ids=_uuids(correlation, "--correlation"),
            saga_ids=_uuids(saga, "--saga"),
            entities=entities,
            message_ids=_uuids(message, "--message"),
            types=tuple(types or ()),
            services=tuple(service or ()),
            statuses=statuses,
            since=_time(since, "--since"),
            until=_time(until, "--until"),
            whole_operations=not naming_only,
            dead_letter_ids=tuple(_broker(dead_letter_origins)) if Status.DEAD_LETTERED in statuses else (),
        )
        cursor = Cursor.parse(after) if after is not None else None
    except StrataError as error:
        raise typer.BadParameter(error.message, param_hint=f"--{error.field or 'filter'}") from None
    ctx.obj = (selection, limit, cursor)
    if ctx.invoked_subcommand is not None:
        return
    _show(selection, limit, cursor, tree=tree, as_json=as_json, as_mermaid=as_mermaid, diagram=diagram)


def _show(
    selection: "Selection",
    limit: int,
    cursor: object,
    *,
    tree: bool,
    as_json: bool,
    as_mermaid: bool,
    diagram: Path | None,
) -> None:
    from services.replay.diagram import mermaid, write_diagram
    from services.replay.reading import read
    from services.replay.render import print_json, show_timeline, show_tree
    from services.replay.saga_records import load_sagas
    from services.replay.selection import Cursor
    from services.replay.timeline import SagaRecord, causal_tree, timeline

    _, bus_schema, sagas_schema = _database()
    assert cursor is None or isinstance(cursor, Cursor)

    async def work(pool: "Pool") -> "tuple[list[Recorded], Cursor | None, list[SagaRecord]]":
        found, following = await read(pool, selection, limit=limit, after=cursor, schema=bus_schema)
        saga_ids = [message.saga_id for message in found if message.saga_id is not None]
        return found, following, await load_sagas(pool, saga_ids, schema=sagas_schema)

    found, following, sagas = run(work)
    lines = timeline(found, sagas, dead_letters=frozenset(selection.dead_letter_ids))
    if as_json:
        print_json(found)
    elif as_mermaid:
        typer.echo(mermaid(lines), nl=False)
    elif tree:
        show_tree(console, causal_tree(found))
    else:
        show_timeline(console, lines)
    if diagram is not None:
        try:
            write_diagram(diagram, lines, title=f"strata replay: {len(found)} message(s)")
        except OSError as error:
            console.print(f"[red]cannot write {diagram}:[/red] {error.strerror}")
            raise typer.Exit(1) from None
        notes.print(f"[dim]sequence diagram written to {diagram}[/dim]")
    if following is not None:
        typer.echo(f"more: add --after {following}", err=True)  # plain: a folded line would cut the cursor


@app.command("export")
def export(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The JSON Lines file to write.", dir_okay=False)],
) -> None:
    """Write the selection (messages, saga records, plugin configs masked, code version) to a JSON Lines export."""
    from services.replay.export_io import export_selection

    selection = ctx.obj[0]
    if selection.empty:
        raise typer.BadParameter("give at least one filter (an export of the whole journal is rarely meant)")
    _, bus_schema, sagas_schema = _database()

    async def work(pool: "Pool") -> tuple[int, int]:
        return await export_selection(pool, selection, file, bus_schema=bus_schema, sagas_schema=sagas_schema)

    try:
        messages, sagas = run(work)
    except OSError as error:
        console.print(f"[red]cannot write {file}:[/red] {error.strerror}")
        raise typer.Exit(1) from None
    console.print(f"exported {messages} message(s) and {sagas} saga(s) to {file}")


@app.command("import")
def import_file(file: Annotated[Path, typer.Argument(help="An export written by `strata replay export`.")]) -> None:
    """Check an export line by line, then load it into this database's journal and saga store (all or nothing)."""
    from services.replay.export_format import read_export
    from services.replay.export_io import import_export

    load_code()
    try:
        checked = read_export(file)
    except StrataError as error:
        raise fail(error) from None
    _, bus_schema, sagas_schema = _database()

    async def work(pool: "Pool") -> tuple[int, int]:
        return await import_export(pool, checked, bus_schema=bus_schema, sagas_schema=sagas_schema)

    messages, sagas = run(work)
    console.print(
        f"imported {messages} new message(s) of {len(checked.messages)} and {sagas} new saga(s) of "
        f"{len(checked.sagas)} from {file} (recorded by strata {checked.code_version})"
    )


@app.command("sandbox")
def sandbox(
    file: Annotated[Path, typer.Argument(help="An export written by `strata replay export`.")],
    *,
    server: Annotated[
        str | None,
        typer.Option("--server", help="A PostgreSQL server URL to make the sandbox's database on (default: embedded)."),
    ] = None,
    sagas: Annotated[
        str | None, typer.Option("--sagas", help="A module whose SAGAS registry replaces the installed definitions.")
    ] = None,
    in_memory: Annotated[
        bool, typer.Option("--in-memory", help="The saga store in memory instead of a fresh database (faster).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON report per saga.")] = False,
) -> None:
    """Re-run an export's sagas against this code in a fresh database and diff what they emit against the record.

    Nothing is sent anywhere. Exit 1 if any saga differs, naming its first divergent step.
    """
    import json

    from services.replay.code import override_sagas
    from services.replay.export_format import read_export
    from services.replay.render import show_verdicts
    from services.replay.sandbox import SagaVerdict, Sandbox, combined_sagas, sandbox_store

    load_code()
    try:
        registry_override = override_sagas(sagas) if sagas is not None else None
    except StrataError as error:
        raise typer.BadParameter(error.message, param_hint="--sagas") from None
    try:
        checked = read_export(file)
    except StrataError as error:
        raise fail(error) from None
    if not checked.sagas:
        raise fail(StrataError(f"{file} holds no saga to replay (export a selection with --saga or an entity)"))

    async def main() -> "list[SagaVerdict]":
        if in_memory:
            return await Sandbox(None, sagas=combined_sagas(registry_override)).replay(checked)
        async with sandbox_store(server) as store:
            return await Sandbox(store, sagas=combined_sagas(registry_override)).replay(checked)

    try:
        verdicts = asyncio.run(main())
    except StrataError as error:
        raise fail(error) from None
    if as_json:
        for verdict in verdicts:
            typer.echo(json.dumps(verdict.as_json()))
    else:
        show_verdicts(console, verdicts, recorded_by=checked.code_version)
    if not all(verdict.same for verdict in verdicts):
        raise typer.Exit(1)


@app.command("redrive")
def redrive(
    ctx: typer.Context,
    *,
    execute: Annotated[bool, typer.Option("--execute", help="Send. Without it, only the preview is shown.")] = False,
    dead_letters: Annotated[
        bool, typer.Option("--dead-letters", help="Send the selected dead letters back to their queues (RabbitMQ).")
    ] = False,
    everything: Annotated[bool, typer.Option("--all", help="Allow more than 100 messages.")] = False,
    operator: Annotated[str | None, typer.Option("--operator", help="Who re-drives (default: your user).")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the journal.")] = "",
) -> None:
    """Preview a re-drive of the selected commands or dead letters; send it with --execute (journaled).

    Commands go out again under new ids through the outbox; dead letters (--dead-letters) go back to their queues.
    Every re-drive is journaled as an operator action, `replay.redriven`.
    """
    import getpass

    from bus.settings import BusSettings
    from services.replay.broker import dead_letter_origins, redrive_dead
    from services.replay.reading import read
    from services.replay.redrive import Kind, check_size, deployed_bindings, journal_commands, plan
    from services.replay.render import show_plan

    selection, limit, cursor = ctx.obj
    if selection.empty:
        raise typer.BadParameter("give at least one filter: re-driving the whole journal is never meant")
    _, bus_schema, _ = _database()
    origins = _broker(dead_letter_origins) if dead_letters else {}

    async def select(pool: "Pool") -> "list[Recorded]":
        found, _ = await read(pool, selection, limit=limit, after=cursor, schema=bus_schema)
        return found

    found = run(select)
    if dead_letters:
        found = [message for message in found if message.message_id in origins]
    chosen = plan(found, dead_letters=origins, bindings=deployed_bindings(), namespace=BusSettings().namespace)
    try:
        check_size(chosen, everything=everything)
    except StrataError as error:
        raise fail(error) from None
    show_plan(console, chosen)
    if not execute:
        console.print(f"[yellow]nothing sent[/yellow]: {len(chosen.planned)} message(s) would be; add --execute")
        return
    who = operator or getpass.getuser()
    if dead_letters:
        ids = [item.original.message_id for item in chosen.planned]
        moved = _broker(lambda settings: redrive_dead(settings, ids))
        console.print(f"re-drove {moved} dead letter(s) to their queues")

    async def send(pool: "Pool") -> list[UUID]:
        return await journal_commands(pool, chosen, operator=who, reason=reason, schema=bus_schema)

    sent = run(send)
    commands = sum(1 for item in chosen.planned if item.kind is Kind.COMMAND)
    if commands:
        console.print(f"queued {len(sent)} command(s) in the outbox (a running daemon's relay publishes them)")
    console.print(f"journaled as replay.redriven by {who}")
