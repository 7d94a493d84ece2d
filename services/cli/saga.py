"""`strata saga`: list, show (a timeline), act on (retry, skip, abort, compensate) and replay sagas.

It reads and writes the saga tables (STRATA_DATABASE_URL, STRATA_SAGAS_SCHEMA) directly: an operator's action is
one transaction that also journals it and leaves a timer due now, so a running coordinator carries on from there.
`replay` re-runs recorded journals (from the database, or a file written by `saga show --json`) against the
saga code installed here and reports any divergence; it exits 1 if one diverges, so CI can run it.
"""

import asyncio
import getpass
import importlib
import json
import os
import pkgutil
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from uuid import UUID

import typer
from rich.table import Table

from sagas.definition import saga_registry
from sagas.operator import Action, act
from sagas.records import SagaInstance, SagaStatus, StepKind, StepRecord
from schemas import registry
from schemas.errors import StrataError
from services.cli.talking import listing, make_console

if TYPE_CHECKING:  # the store (and the database driver) is imported when a command runs: `strata --help` stays fast
    from sagas.postgres_store import PostgresSagaStore
    from sagas.replay import ReplayCheck

app = typer.Typer(help="Saga instances: list, show, retry, skip, abort, compensate, replay.", no_args_is_help=True)
console = make_console()
T = TypeVar("T")
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _database_url() -> str:
    return os.environ.get("STRATA_DATABASE_URL", DEFAULT_DATABASE_URL)


def _schema() -> str:
    from sagas.postgres_store import DEFAULT_SCHEMA

    return os.environ.get("STRATA_SAGAS_SCHEMA", DEFAULT_SCHEMA)


SHORT_ID = 8  # hex digits of a saga id shown in tables; any unique prefix of at least MIN_PREFIX is taken back
MIN_PREFIX = 4


def _saga_id(value: str) -> UUID:
    """A saga's id from its full form or a unique prefix of it (as `saga list` shows them)."""
    try:
        return UUID(value)
    except ValueError:
        pass
    if len(value) < MIN_PREFIX or any(char not in "0123456789abcdef-" for char in value.lower()):
        raise typer.BadParameter(
            f"{value!r} is not a saga id: give the id or at least its first {MIN_PREFIX} hex digits",
            param_hint="SAGA_ID",
        )

    async def work(store: "PostgresSagaStore") -> list[UUID]:
        async with store.session() as session:
            return await session.find_ids(value)

    found = _run(work)
    if len(found) != 1:
        said = "no saga's id starts" if not found else f"{len(found)}{'+' if len(found) == 3 else ''} sagas' ids start"
        raise typer.BadParameter(f"{said} with {value!r} (see `strata saga list`)", param_hint="SAGA_ID")
    return found[0]


def _run(work: "Callable[[PostgresSagaStore], Awaitable[T]]") -> T:
    """Run `work` with a store on the configured database; strata errors become a clear message and exit 1."""
    from bus.postgres import create_pool
    from sagas.postgres_store import PostgresSagaStore

    async def main() -> T:
        pool = await create_pool(_database_url(), min_size=1, max_size=2)
        try:
            return await work(PostgresSagaStore(pool, schema=_schema()))
        finally:
            await pool.close()

    try:
        return asyncio.run(main())
    except StrataError as error:
        console.print(f"[red]{type(error).__name__}:[/red] {error.message}")
        raise typer.Exit(1) from None


@app.command("list")
def list_sagas(
    status: Annotated[SagaStatus | None, typer.Option(help="Only sagas in this status.")] = None,
    name: Annotated[str | None, typer.Option(help="Only sagas of this name.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List saga instances, newest first."""
    from sagas.serialize import instance_to_json

    async def work(store: "PostgresSagaStore") -> list[SagaInstance]:
        async with store.session() as session:
            return await session.list_instances(status=status, name=name, limit=limit)

    instances = _run(work)
    if as_json:
        typer.echo(json.dumps([instance_to_json(instance) for instance in instances], indent=2))
        return
    table = listing("saga id", "name", "status", "created", "updated", "error")
    for instance in instances:
        table.add_row(
            str(instance.saga_id)[:SHORT_ID],
            f"{instance.name} v{instance.version}",
            _status(instance.status),
            _when(instance.created_at),
            _when(instance.updated_at),
            (instance.error or "")[:80],
        )
    console.print(table)


@app.command("show")
def show(
    saga_id: Annotated[str, typer.Argument(help="The saga's id, or a unique prefix of it (as `saga list` shows).")],
    as_json: JsonOption = False,
) -> None:
    """Draw a saga's timeline: steps, attempts, durations, compensations, lock holders, operator actions."""
    from sagas.serialize import instance_to_json, step_to_json

    wanted = _saga_id(saga_id)

    async def work(store: "PostgresSagaStore") -> dict[str, Any]:  # the export: JSON values of every kind
        async with store.session() as session:
            instance = await session.get_instance(wanted)
            if instance is None:
                raise StrataError(f"no saga {wanted}")
            return {
                "instance": instance_to_json(instance),
                "steps": [step_to_json(step) for step in await session.load_steps(wanted)],
                "locks": [
                    {"resource": lock.resource, "token": lock.token, "expires_at": lock.expires_at.isoformat()}
                    for lock in await session.list_locks(wanted)
                ],
                "events": [
                    {"at": event.at.isoformat(), "kind": event.kind, "detail": event.detail}
                    for event in await session.list_events(wanted)
                ],
            }

    export = _run(work)
    if as_json:
        typer.echo(json.dumps(export, indent=2))
        return
    _draw(export)


def _operator_command(action: Action) -> Callable[..., None]:
    def command(
        saga_id: Annotated[str, typer.Argument(help="The saga's id, or a unique prefix of it (as `saga list` shows).")],
        reason: Annotated[str, typer.Option(help="Why (kept in the saga's journal).")] = "",
        by: Annotated[str | None, typer.Option(help="Who acts (default: the login name).")] = None,
    ) -> None:
        wanted = _saga_id(saga_id)
        actor = by or getpass.getuser()

        async def work(store: "PostgresSagaStore") -> str:
            async with store.session() as session:
                return await act(session, wanted, action, actor=actor, reason=reason, now=datetime.now(UTC))

        console.print(f"{wanted}: {_run(work)}")

    command.__doc__ = {
        Action.RETRY: "Give a STUCK saga's failed step (or a FAILED saga's failed compensation) one more attempt.",
        Action.SKIP: "Count a STUCK saga's failed step (or a FAILED saga's failed compensation) as done.",
        Action.ABORT: "End a saga FAILED now and release its locks, undoing nothing.",
        Action.COMPENSATE: "Undo what a running or stuck saga did, even after its pivot.",
    }[action]
    return command


for _action in Action:
    app.command(_action.value)(_operator_command(_action))


@app.command("replay")
def replay(
    saga_id: Annotated[str | None, typer.Argument(help="A saga in the database.")] = None,
    *,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="A saga exported by `saga show --json`.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every saga in the database (at most --limit).")] = False,
    limit: Annotated[int, typer.Option(min=1, help="With --all, the newest this many.")] = 1000,
    module: Annotated[list[str] | None, typer.Option("--module", "-m", help="Import saga code from it.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Re-run recorded journals against the saga code installed here; exit 1 if any diverges."""
    from sagas.replay import check_replay
    from sagas.serialize import instance_from_json, step_from_json

    if sum((saga_id is not None, file is not None, every)) != 1:
        raise typer.BadParameter("give exactly one of SAGA_ID, --file or --all")
    _load_saga_code(module or [])
    if file is not None:
        try:
            exported = json.loads(file.read_text(encoding="utf-8"))
            instance = instance_from_json(exported["instance"])
            steps = [step_from_json(instance.saga_id, step) for step in exported["steps"]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise typer.BadParameter(f"{file} is not a saga export: {error}", param_hint="--file") from None
        checks = [check_replay(saga_registry, instance, steps, messages=registry)]
    else:
        wanted = _saga_id(saga_id) if saga_id is not None else None

        async def work(store: "PostgresSagaStore") -> "list[ReplayCheck]":
            async with store.session() as session:
                if wanted is None:
                    instances = await session.list_instances(limit=limit)
                elif (found := await session.get_instance(wanted)) is not None:
                    instances = [found]
                else:
                    raise StrataError(f"no saga {wanted}")
                return [
                    check_replay(saga_registry, i, await session.load_steps(i.saga_id), messages=registry)
                    for i in instances
                ]

        checks = _run(work)
    _report(checks, as_json)
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


def _load_saga_code(modules: list[str]) -> None:
    """Import the messages and the saga definitions, so that journals decode and replay."""
    from services.catalog import load_all_messages

    load_all_messages()
    try:
        definitions = importlib.import_module("sagas.definitions")
        for found in pkgutil.iter_modules(definitions.__path__):
            importlib.import_module(f"sagas.definitions.{found.name}")
    except ModuleNotFoundError:
        pass  # no built-in saga definitions installed yet
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise typer.BadParameter(f"cannot import {name}: {error}", param_hint="--module") from None


def _report(checks: "list[ReplayCheck]", as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([_check_json(check) for check in checks], indent=2))
        return
    for check in checks:
        mark = "[green]ok[/green]" if check.ok else "[red]DIVERGED[/red]"
        detail = f": {check.reason}" if check.reason else ""
        console.print(
            f"{mark} {check.saga_id} {check.name} v{check.version} ({check.steps} steps, {check.outcome}){detail}"
        )


def _check_json(check: "ReplayCheck") -> dict[str, Any]:  # JSON values of every kind
    return {
        "saga_id": check.saga_id,
        "name": check.name,
        "version": check.version,
        "ok": check.ok,
        "outcome": check.outcome,
        "reason": check.reason,
        "steps": check.steps,
    }


def _draw(export: dict[str, Any]) -> None:  # the JSON export of `show`
    """The timeline in 80 columns: ids shortened to 8 characters, times as offsets from the saga's start, and what
    went wrong (failed attempts, errors) on lines of their own under the table, where they need not wrap."""
    from sagas.serialize import instance_from_json, step_from_json

    instance = instance_from_json(export["instance"])
    console.print(
        f"[bold]{instance.name} v{instance.version}[/bold]  {_status(instance.status)}"
        + ("  [dim](past its pivot)[/dim]" if instance.pivoted else "")
    )
    console.print(f"  saga {instance.saga_id}, started {_when(instance.created_at)}", highlight=False)
    if instance.error:
        console.print(f"  reason: {instance.error}", highlight=False)
    steps = [step_from_json(instance.saga_id, step) for step in export["steps"]]
    table = Table(box=None, header_style="bold", padding=(0, 1))
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("step", overflow="fold", ratio=1)
    for column in ("status", "tries", "at", "took"):
        table.add_column(column, no_wrap=True, justify="right" if column != "status" else "left")
    notes: list[str] = []
    for step in steps:
        table.add_row(*_step_row(step, instance.created_at))
        note = _step_note(step)
        if note:
            notes.append(f"  #{step.seq} {note}")
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)
    for lock in export["locks"]:
        console.print(
            f"  holds {_short_ids(lock['resource'])} (token {lock['token']}, "
            f"lease until {_when(datetime.fromisoformat(lock['expires_at']))})",
            highlight=False,
        )
    for event in export["events"]:
        detail = ", ".join(f"{key}={value}" for key, value in event["detail"].items() if value is not None)
        console.print(f"  {event['at'][11:23]}  {event['kind']}  {_short_ids(detail)}", highlight=False)


def _short_ids(text: str) -> str:
    """Every UUID in `text` cut to its first 8 characters, enough to tell a saga's resources apart."""
    return UUID_TEXT.sub(lambda match: match.group(0)[:8], text)


def _step_row(step: StepRecord, started: datetime | None) -> list[str]:
    what = step.command.type if step.command else json.dumps(step.args or step.value or {})
    if step.kind is StepKind.PIVOT:
        what = "point of no return"
    elif step.kind is StepKind.COMPENSATION:
        what = f"↩ {what} (undoes #{step.compensates})"
    elif step.kind is StepKind.LOCK and step.value and "token" in step.value:
        what = f"lock {', '.join(step.args['resources'])} → token {step.value['token']}"
    elif step.kind is StepKind.UUID and step.value:
        what = f"uuid {step.value.get('uuid', '')}"
    elif step.kind is not StepKind.STEP:
        what = f"{step.kind.value} {what}"
    took = ""
    if step.created_at and step.finished_at:
        took = f"{(step.finished_at - step.created_at).total_seconds() * 1000:.0f} ms"
    at = f"+{(step.created_at - started).total_seconds():.2f}s" if step.created_at and started else ""
    return [str(step.seq), _short_ids(what), step.status.value, str(step.attempt or ""), at, took]


def _step_note(step: StepRecord) -> str:
    """What a step's row does not say: attempts that failed, the error it ended with."""
    final = step.error if step.error and step.status.value == "FAILED" else None
    said = [
        f"attempt {a.number}: {a.outcome}"
        for a in step.attempts
        if a.outcome and "succeeded" not in a.outcome and (final is None or a.outcome != final.code)
    ]
    if final is not None:
        said.append(f"failed: {final.code}: {final.message}")
    return "; ".join(said)


def _status(status: SagaStatus) -> str:
    colour = {"COMPLETED": "green", "COMPENSATED": "yellow", "FAILED": "red", "STUCK": "magenta"}.get(status.value)
    return f"[{colour}]{status.value}[/{colour}]" if colour else status.value


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if moment else ""
