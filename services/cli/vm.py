"""`strata vm`: snapshot every volume of a VM together, and revert a VM to such a snapshot (the revert saga).

`revert` follows the saga as it goes: every event of its correlation (vm.stopped, snapshot.created, ...) moves
the progress display, and the outcome is `vm.reverted` or `vm.revert.failed` from the orchestrator.
"""

import asyncio
import re
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from schemas import Envelope, StrataError
from schemas.errors import FailedPrecondition, InvalidArgument, NotFound
from services.cli.talking import (
    JsonOption,
    TimeoutOption,
    as_given,
    console,
    errors,
    fail,
    found_one,
    id_or_name,
    invalid,
    listing,
    print_json,
    read,
    talk,
)
from services.cli.volume import volume_id_of, volume_names

if TYPE_CHECKING:  # messages, sagas and the bus are imported when a command runs, so that `strata --help` stays fast
    from rich.progress import Progress

    from schemas.snapshot import CreateVmSnapshot, VolumeSnapshotPair
    from services.cli.sending import Client

app = typer.Typer(help="VM snapshots and reverts (every volume of a VM together).", no_args_is_help=True)
VmArgument = Annotated[str, typer.Argument(help="The VM's id, or its name (`strata vm list`).")]


def parse_pairs(pairs: list[str]) -> "tuple[VolumeSnapshotPair, ...]":
    """`--pair VOLUME_ID=SNAPSHOT_ID` options as pairs; InvalidArgument names the bad one."""
    from schemas.snapshot import VolumeSnapshotPair

    parsed = []
    for pair in pairs:
        volume, equals, snapshot = pair.partition("=")
        try:
            parsed.append(VolumeSnapshotPair(volume_id=uuid.UUID(volume), snapshot_id=uuid.UUID(snapshot)))
        except ValueError:
            raise InvalidArgument(
                f"--pair takes VOLUME_ID=SNAPSHOT_ID (two UUIDs), got {pair!r}", field="pair"
            ) from None
        if not equals:
            raise InvalidArgument(f"--pair takes VOLUME_ID=SNAPSHOT_ID, got {pair!r}", field="pair")
    return tuple(parsed)


@app.command("snapshot")
def snapshot(
    vm: VmArgument,
    name: Annotated[str, typer.Option(help="The VM snapshot's name.")],
    volume: Annotated[
        list[str], typer.Option(help="A volume of the VM, by id or name (repeat; default: every volume it has).")
    ] = [],  # noqa: B006  # typer reads the default; it is never mutated
    as_json: JsonOption = False,
    timeout: TimeoutOption = 300.0,
) -> None:
    """Snapshot every volume of a VM together.

    Example: strata vm snapshot web-1 --name before-upgrade
    """
    from schemas.snapshot import CreateVmSnapshot, VmSnapshotCreated, VmSnapshotCreateFailed

    volume_ids = [volume_id_of(value, timeout=min(timeout, 15.0)) for value in volume]

    async def work(client: "Client") -> dict[str, Any]:  # Any: the JSON report
        from services.cli.host import known_hosts, vm_id_of

        vm_id = id_or_name(vm) or vm_id_of(await known_hosts(client, timeout=timeout), vm)
        ids = volume_ids or [info.volume_id for info in await _volumes_of(client, vm_id, timeout=timeout)]
        try:
            command = CreateVmSnapshot(vm_snapshot_id=uuid.uuid4(), vm_id=vm_id, name=name, volume_ids=tuple(ids))
        except ValueError as error:
            raise invalid(error) from None
        with _progress() as progress:
            progress.add_task(f"snapshotting {len(ids)} volumes of VM {vm_id}", total=None)
            try:
                created = await client.send(command, (VmSnapshotCreated,), (VmSnapshotCreateFailed,), timeout=timeout)
            except FailedPrecondition as error:
                if "no service takes" not in error.message:
                    raise
                # No service takes VM snapshots as one command yet: snapshot each volume; the pairs drive a revert.
                return await _volume_by_volume(client, command, timeout=timeout)
        assert isinstance(created, VmSnapshotCreated)
        return created.model_dump(mode="json")

    report = talk(work)
    if as_json:
        print_json(report)
        return
    console.print(f"VM snapshot [bold]{name}[/bold] {report['vm_snapshot_id']} of VM {vm} ({report['vm_id']}):")
    names = volume_names(timeout=min(timeout, 15.0))
    for pair in report["snapshots"]:
        console.print(f"  volume {names.get(pair['volume_id'], pair['volume_id'])} → snapshot {pair['snapshot_id']}")
    # The snapshot service keeps the pairs: the VM snapshot (its name or id) is all a revert needs.
    console.print(f"revert with: strata vm revert {vm} {name}")


async def _volumes_of(client: "Client", vm_id: uuid.UUID, *, timeout: float) -> list[Any]:  # Any: VolumeInfo
    from schemas.storage_queries import ListVolumes, VolumesListed

    listed = await client.ask(ListVolumes(vm_id=vm_id), VolumesListed, timeout=timeout)
    if not listed.volumes:
        raise NotFound(f"the storage service knows no volume of VM {vm_id}: give them with --volume", field="vm")
    return sorted(listed.volumes, key=lambda info: info.name)


async def _volume_by_volume(client: "Client", command: "CreateVmSnapshot", *, timeout: float) -> dict[str, Any]:
    from schemas.snapshot import CreateSnapshot, SnapshotCreated, SnapshotCreateFailed

    sent: list[tuple[CreateSnapshot, Envelope]] = []
    for volume_id in command.volume_ids:
        each = CreateSnapshot(snapshot_id=uuid.uuid4(), volume_id=volume_id, name=f"{command.name}-{volume_id.hex[:8]}")
        sent.append((each, await client.publish(each)))
    pairs = []
    for each, envelope in sent:
        await client.outcome(envelope, (SnapshotCreated,), (SnapshotCreateFailed,), timeout=timeout)
        pairs.append({"volume_id": str(each.volume_id), "snapshot_id": str(each.snapshot_id)})
    return {"vm_snapshot_id": str(command.vm_snapshot_id), "vm_id": str(command.vm_id), "snapshots": pairs}


@app.command("list")
def list_vms(as_json: JsonOption = False, timeout: TimeoutOption = 15.0) -> None:
    """List the VMs the agents' hypervisors know, with their host, power state and strata volumes.

    Example: strata vm list
    """
    from services.cli.host import NO_HOSTS, known_hosts

    async def work(client: "Client") -> tuple[int, list[dict[str, Any]]]:  # Any: JSON rows
        from schemas.storage_queries import ListVolumes, VolumesListed

        hosts = await known_hosts(client, timeout=timeout)
        volumes = (await client.ask(ListVolumes(), VolumesListed, timeout=timeout)).volumes
        rows = []
        for info in hosts:
            for vm in info.vms:
                sources = {disk.source for disk in vm.disks}
                names = sorted(v.name for v in volumes if v.vm_id == vm.vm_id or (v.locator or "") in sources)
                rows.append(
                    {
                        "vm_id": str(vm.vm_id),
                        "name": vm.name,
                        "host": info.identity.host,
                        "host_state": info.state.value,
                        "power_state": vm.power_state.value,
                        "disks": len(vm.disks),
                        "volumes": names,
                    }
                )
        return len(hosts), rows

    host_count, rows = talk(work)
    if as_json:
        print_json({"vms": rows})
        return
    if not rows:
        console.print("no VM on any registered host" if host_count else NO_HOSTS)
        return

    table = listing("id", "name", "host", "power", "disks", "volumes")
    for row in rows:
        host = row["host"] if row["host_state"] == "Up" else f"{row['host']} ({row['host_state']})"
        table.add_row(
            row["vm_id"][:8], row["name"], host, row["power_state"], str(row["disks"]), ", ".join(row["volumes"])
        )
    console.print(table)


@app.command("revert")
def revert(  # noqa: PLR0917  # typer makes each parameter an option or argument
    vm: VmArgument,
    vm_snapshot: Annotated[str, typer.Argument(help="The VM snapshot's id, or the name it was taken with.")],
    host: Annotated[
        str | None,
        typer.Option(help="The host the VM runs on (its agent stops and starts it); default: the registered one."),
    ] = None,
    pair: Annotated[
        list[str],
        typer.Option(help="VOLUME_ID=SNAPSHOT_ID (repeat); default: the VM snapshot's own, from the snapshot service."),
    ] = [],  # noqa: B006  # typer reads the default; it is never mutated
    as_json: JsonOption = False,
    timeout: TimeoutOption = 600.0,
) -> None:
    """Revert every volume of a VM to a VM snapshot; a running VM is stopped and started again.

    Example: strata vm revert web-1 before-upgrade
    """
    from sagas.work import saga_id_for
    from schemas.snapshot import RevertVmToSnapshot, VmReverted, VmRevertFailed
    from services.cli.host import check_placement, host_of_vm, known_hosts, vm_id_of
    from services.cli.running import ORCHESTRATOR, SNAPSHOT, STORAGE, agent_of, require_running

    vm_snapshot_id = _vm_snapshot_id_of(vm_snapshot)
    try:
        pairs = parse_pairs(pair) or _recorded_pairs(vm_snapshot_id)
        # Checked before anything is sent; a VM named, and the host when not given, are the registry's (below).
        checked = RevertVmToSnapshot(
            vm_id=id_or_name(vm) or uuid.UUID(int=0), vm_snapshot_id=vm_snapshot_id, host=host or "-", snapshots=pairs
        )
    except StrataError as error:
        fail(error)
    except ValueError as error:
        fail(invalid(error))

    async def work(client: "Client") -> tuple[VmReverted, uuid.UUID]:
        hosts = await known_hosts(client, timeout=min(timeout, 15.0))
        check_placement(hosts, host=host, cluster=None)
        vm_id = vm_id_of(hosts, vm)
        command = checked.model_copy(update={"vm_id": vm_id, "host": host or host_of_vm(hosts, vm_id)})
        # The saga needs every one of them: a stopped one would leave it waiting, so say which at once.
        await require_running(client.transport, [ORCHESTRATOR, STORAGE, SNAPSHOT, agent_of(command.host)])
        envelope = await client.publish(command)
        saga_id = saga_id_for(envelope.message_id)
        with _progress() as progress:
            task = progress.add_task(f"reverting VM {vm} (saga {saga_id})", total=None)
            follower = asyncio.create_task(_follow(client, envelope, progress, task))
            try:
                reverted = await client.outcome(envelope, (VmReverted,), (VmRevertFailed,), timeout=timeout)
            finally:
                follower.cancel()
        assert isinstance(reverted, VmReverted)
        return reverted, saga_id

    reverted, saga_id = talk(work)
    if as_json:
        print_json(reverted.model_dump(mode="json") | {"saga_id": str(saga_id)})
        return
    started = "started again" if reverted.restarted else "left stopped, as it was"
    console.print(
        f"VM {vm} reverted to VM snapshot {as_given(vm_snapshot, vm_snapshot_id)}; the VM was {started}. "
        f"Timeline: strata saga show {saga_id}"
    )


async def _follow(client: "Client", envelope: Envelope, progress: "Progress", task: Any) -> None:  # Any: a TaskID
    seen = 0
    while True:
        events = [e for e in client.watch.events if e.correlation_id == envelope.correlation_id]
        if len(events) != seen:
            seen = len(events)
            progress.update(task, description=f"reverting: {seen} events, last {events[-1].type}")
        await asyncio.sleep(0.2)  # a display refresh, not a wait for a condition


def _vm_snapshot_id_of(vm_snapshot: str) -> uuid.UUID:
    """The VM snapshot `vm_snapshot` names: its id as given, or the one VM snapshot taken with that name, told by its
    volumes' snapshots (named `<name>-<n>` by the snapshot-VM saga, `<name>-<volume id's first 8 hex>` volume by
    volume), read-only in the snapshot service's tables."""
    given = id_or_name(vm_snapshot)
    if given is not None:
        return given
    from sagas.definitions.snapshot_vm import NAME_ROOM

    prefix = f"{vm_snapshot[:NAME_ROOM]}-"

    async def work(connection: Any) -> list[Any]:  # Any: asyncpg connection and records
        return list(
            await connection.fetch(
                "SELECT name, vm_snapshot_id FROM snapshot.snapshots WHERE vm_snapshot_id IS NOT NULL "
                "AND state <> 'Destroyed' AND left(name, $2) = $1",
                prefix,
                len(prefix),
            )
        )

    found = sorted(
        {row["vm_snapshot_id"] for row in read(work) if re.fullmatch(r"[0-9]+|[0-9a-f]{8}", row["name"][len(prefix) :])}
    )
    chosen = found_one(
        found,
        missing=f"no VM snapshot named {vm_snapshot!r} (its id is in `strata vm snapshot`'s output)",
        ambiguous=lambda count: f"{count} VM snapshots are named {vm_snapshot!r}: give its id",
        field="vm_snapshot",
    )
    return uuid.UUID(str(chosen))


def _recorded_pairs(vm_snapshot_id: uuid.UUID) -> "tuple[VolumeSnapshotPair, ...]":
    from schemas.snapshot import VolumeSnapshotPair

    async def work(connection: Any) -> list[Any]:  # Any: asyncpg connection and records
        return list(
            await connection.fetch(
                "SELECT volume_id, snapshot_id FROM snapshot.snapshots WHERE vm_snapshot_id = $1 ORDER BY volume_id",
                vm_snapshot_id,
            )
        )

    rows = read(work)
    if not rows:
        raise NotFound(
            f"the snapshot service records no snapshot of VM snapshot {vm_snapshot_id}: give --pair VOLUME=SNAPSHOT",
            field="vm_snapshot",
        )
    return tuple(VolumeSnapshotPair(volume_id=row["volume_id"], snapshot_id=row["snapshot_id"]) for row in rows)


def _progress() -> "Progress":
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=errors)
