"""`strata snapshot-policy`: create, list and delete scheduled snapshot policies (CloudStack's formats).

The schedule and time zone are checked here with the snapshot service's own rules before anything is sent, so a
bad schedule is refused at once, naming the field. `list` reads the snapshot service's table read-only.
"""

import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from schemas import StrataError
from services.cli.talking import (
    JsonOption,
    TimeoutOption,
    console,
    fail,
    invalid,
    listing,
    parse_uuid,
    print_json,
    read,
    talk,
)
from services.cli.volume import find_volume, volume_id_of, volume_names

if TYPE_CHECKING:  # messages, rules and the bus are imported when a command runs, so that `strata --help` stays fast
    from schemas.snapshot import CreateSnapshotPolicy
    from services.cli.sending import Client

app = typer.Typer(help="Scheduled snapshot policies.", no_args_is_help=True)
SCHEDULE_HELP = (
    "Minutes first, as CloudStack writes it: HOURLY MM; DAILY MM:HH; WEEKLY MM:HH:D (1 = Sunday); "
    "MONTHLY MM:HH:DD (1-28)."
)


def checked_policy(
    volume_id: uuid.UUID, interval: str, schedule: str, timezone: str, max_snaps: int
) -> "CreateSnapshotPolicy":
    """The policy command, or InvalidArgument naming the field at fault (interval_type, schedule, timezone, ...)."""
    from schemas.snapshot import CreateSnapshotPolicy
    from services.domain.policies import load_time_zone, parse_interval_type, parse_schedule

    interval_type = parse_interval_type(interval)
    parse_schedule(interval_type, schedule)
    load_time_zone(timezone)
    try:
        return CreateSnapshotPolicy(
            policy_id=uuid.uuid4(),
            volume_id=volume_id,
            interval_type=interval_type,
            schedule=schedule,
            timezone=timezone,
            max_snaps=max_snaps,
        )
    except ValueError as error:
        raise invalid(error) from None


@app.command("create")
def create(  # noqa: PLR0917  # typer makes each parameter an option or argument
    volume: Annotated[str, typer.Argument(help="The volume's id or name.")],
    interval: Annotated[str, typer.Option("--interval", help="HOURLY, DAILY, WEEKLY or MONTHLY.")],
    schedule: Annotated[str, typer.Option("--schedule", help=SCHEDULE_HELP)],
    timezone: Annotated[str, typer.Option("--timezone", help="IANA time zone the schedule is read in.")] = "UTC",
    max_snaps: Annotated[int, typer.Option("--max-snaps", help="How many of its snapshots to keep.")] = 8,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Snapshot a volume on a schedule, keeping the newest --max-snaps."""
    from schemas.snapshot import SnapshotPolicyCreated, SnapshotPolicyCreateFailed

    try:
        # Checked before connecting: a bad policy is refused without sending anything.
        checked = checked_policy(uuid.UUID(int=0), interval, schedule, timezone, max_snaps)
    except StrataError as error:
        fail(error)

    async def work(client: "Client") -> SnapshotPolicyCreated:
        info = await find_volume(client, volume, timeout=timeout)
        command = checked.model_copy(update={"volume_id": info.volume_id})
        created = await client.send(command, (SnapshotPolicyCreated,), (SnapshotPolicyCreateFailed,), timeout=timeout)
        assert isinstance(created, SnapshotPolicyCreated)
        return created

    created = talk(work)
    if as_json:
        print_json(created)
        return
    console.print(
        f"policy {created.policy_id}: {created.interval_type.value} {created.schedule} ({created.timezone}), "
        f"keeps {created.max_snaps}; first run {created.next_run_at.isoformat()}"
    )


@app.command("list")
def list_policies(
    volume: Annotated[str | None, typer.Option(help="Only the policies of this volume (id or name).")] = None,
    as_json: JsonOption = False,
) -> None:
    """List snapshot policies with their next run."""
    volume_id = volume_id_of(volume) if volume else None

    async def work(connection: Any) -> list[dict[str, Any]]:  # Any: asyncpg connection; JSON rows
        rows = await connection.fetch(
            "SELECT policy_id, volume_id, interval_type, schedule, timezone, max_snaps, next_run_at, last_run_at "
            "FROM snapshot.policies WHERE ($1::uuid IS NULL OR volume_id = $1) ORDER BY created_at",
            volume_id,
        )
        return [
            {key: (value.isoformat() if hasattr(value, "isoformat") else value) for key, value in dict(row).items()}
            | {"policy_id": str(row["policy_id"]), "volume_id": str(row["volume_id"])}
            for row in rows
        ]

    rows = read(work)
    if as_json:
        print_json({"policies": rows})
        return
    table = listing("id", "volume", "interval", "schedule", "time zone", "keeps", "next run", "last run")
    names = volume_names() if rows else {}
    for row in rows:
        table.add_row(
            row["policy_id"],
            names.get(row["volume_id"], row["volume_id"]),
            row["interval_type"],
            row["schedule"],
            row["timezone"],
            str(row["max_snaps"]),
            str(row["next_run_at"])[:19],
            str(row["last_run_at"] or "")[:19],
        )
    console.print(table)


@app.command("delete")
def delete(
    policy: Annotated[str, typer.Argument(help="The policy's id.")],
    as_json: JsonOption = False,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Delete a policy (the snapshots it took stay)."""
    from schemas.snapshot import DeleteSnapshotPolicy, SnapshotPolicyDeleted, SnapshotPolicyDeleteFailed

    policy_id = parse_uuid(policy, "POLICY")

    async def work(client: "Client") -> SnapshotPolicyDeleted:
        deleted = await client.send(
            DeleteSnapshotPolicy(policy_id=policy_id),
            (SnapshotPolicyDeleted,),
            (SnapshotPolicyDeleteFailed,),
            timeout=timeout,
        )
        assert isinstance(deleted, SnapshotPolicyDeleted)
        return deleted

    deleted = talk(work)
    if as_json:
        print_json(deleted)
        return
    console.print(f"policy {deleted.policy_id} deleted")
