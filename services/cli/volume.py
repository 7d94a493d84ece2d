"""`strata volume`: create, list, show, resize and delete volumes (the storage service places and runs them)."""

import uuid
from typing import TYPE_CHECKING, Annotated

import typer

from schemas.storage import (
    CreateVolume,
    DeleteVolume,
    ResizeVolume,
    VolumeCreated,
    VolumeCreateFailed,
    VolumeDeleted,
    VolumeDeleteFailed,
    VolumeResized,
    VolumeResizeFailed,
    VolumeState,
)
from services.cli.pool import find_pool
from services.cli.talking import (
    JsonOption,
    TimeoutOption,
    as_given,
    console,
    errors,
    fail,
    human_bytes,
    id_or_name,
    invalid,
    listing,
    parse_size,
    print_json,
    print_record,
    talk,
    talk_if_answered,
    the_only,
    zone_id,
)

if TYPE_CHECKING:  # queries and the bus are imported when a command runs, so that `strata --help` stays fast
    from rich.progress import Progress

    from schemas import Event
    from schemas.storage_queries import VolumeInfo
    from services.cli.sending import Client

app = typer.Typer(help="Volumes on primary storage.", no_args_is_help=True)
VolumeArgument = Annotated[str, typer.Argument(help="The volume's id or name.")]


def _progress() -> "Progress":
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=errors)


@app.command("create")
def create(  # noqa: PLR0917  # typer makes each parameter an option or argument
    name: Annotated[str, typer.Argument(help="The volume's name.")],
    size: Annotated[str, typer.Argument(help="Its virtual size: 10G, 512M, or bytes.")],
    zone: Annotated[str, typer.Option(help="The zone (a UUID or a name).")] = "default",
    pool: Annotated[str | None, typer.Option(help="Place it on this pool (id or name) instead of asking.")] = None,
    cluster: Annotated[str | None, typer.Option(help="The cluster of the VM that will use it.")] = None,
    host: Annotated[str | None, typer.Option(help="The host of the VM that will use it.")] = None,
    hypervisor: Annotated[str | None, typer.Option(help="The VM's hypervisor.")] = None,
    tag: Annotated[list[str], typer.Option(help="A storage tag every candidate pool must carry.")] = [],  # noqa: B006
    vm: Annotated[str | None, typer.Option(help="The VM it belongs to (id or name, `strata vm list`).")] = None,
    template: Annotated[str | None, typer.Option(help="Make it from this template (id or name).")] = None,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 120.0,
) -> None:
    """Create a volume, empty or from a template: the allocator picks a pool (or --pool), an agent creates it.

    Example: strata volume create data-1 10G --host kvm-01 --cluster rack-1
    """
    size_bytes = parse_size(size)
    vm_id = id_or_name(vm) if vm else None  # a VM's name is resolved through the host registry below
    try:
        command = CreateVolume(
            volume_id=uuid.uuid4(),
            name=name,
            size_bytes=size_bytes,
            zone_id=zone_id(zone),
            cluster_id=cluster,
            host=host,
            hypervisor=hypervisor,
            tags=frozenset(tag),
            vm_id=vm_id,
        )
    except ValueError as error:
        fail(invalid(error))

    async def work(client: "Client") -> tuple[VolumeCreated, str]:
        from services.cli.host import check_placement, known_hosts, vm_placement

        hosts = await known_hosts(client, timeout=timeout) if host or cluster or vm else ()
        check_placement(hosts, host=host, cluster=cluster)  # a typo is refused before anything is placed
        placed = command
        if vm is not None:  # the VM must exist (one the agents' hypervisors report); its volume goes where it is
            vm_id, on, in_cluster = vm_placement(hosts, vm, host=host, cluster=cluster)
            placed = placed.model_copy(update={"vm_id": vm_id, "host": on, "cluster_id": in_cluster})
        if pool is not None:
            info = await find_pool(client, pool, timeout=timeout)
            placed = placed.model_copy(update={"pool_id": info.pool_id})
        if template is not None:
            from schemas.image import ImageKind
            from services.cli.image_downloads import find_image

            found = await find_image(client, template, ImageKind.TEMPLATE, timeout=timeout)
            placed = placed.model_copy(update={"template_id": found.image_id})
        if placed.template_id is None:
            with _progress() as progress:
                progress.add_task(f"creating volume {name} ({human_bytes(size_bytes)})", total=None)
                created = await client.send(placed, (VolumeCreated,), (VolumeCreateFailed,), timeout=timeout)
        else:
            created = await _from_template(client, placed, timeout=timeout)
        assert isinstance(created, VolumeCreated)
        on = (await find_pool(client, str(created.pool_id), timeout=timeout)).name if not as_json else ""
        return created, on

    created, on = talk(work)
    if as_json:
        print_json(created)
        return
    console.print(f"volume [bold]{name}[/bold] {created.volume_id} is Ready on pool {on} ({created.pool_id})")


async def _from_template(client: "Client", command: CreateVolume, *, timeout: float) -> "Event":
    """Create a volume from a template with a bar of the bytes copied when the pool needs its base copy first (the
    agent's `agent.copy.progressed`); a volume on a cached base copy is ready before the first report."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from schemas.agent import CopyProgressed
    from services.cli.following import following

    envelope = await client.publish(command)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task(f"creating volume {command.name} from its template", total=None)

        def copied(event: CopyProgressed) -> None:
            bar.update(task, description=f"copying the template onto the pool ({event.stage.value})")
            bar.update(task, completed=event.done_bytes, total=event.total_bytes or None)

        async with following(client, envelope.correlation_id, CopyProgressed, copied):
            return await client.outcome(envelope, (VolumeCreated,), (VolumeCreateFailed,), timeout=timeout)


async def find_volume(client: "Client", volume: str, *, timeout: float) -> "VolumeInfo":
    """The volume named or numbered `volume`."""
    from schemas.storage_queries import ListVolumes, VolumesListed

    wanted = id_or_name(volume)
    listed = await client.ask(ListVolumes(volume_id=wanted), VolumesListed, timeout=timeout)
    return the_only(
        [info for info in listed.volumes if wanted is not None or info.name == volume],
        missing=f"no volume {volume!r} (see `strata volume list`)",
        ambiguous=lambda count: f"{count} volumes are named {volume!r}: give its id",
        field="volume",
    )


def volume_id_of(volume: str, *, timeout: float = 15.0) -> uuid.UUID:
    """The id of the volume given by id or name (a name is looked up in the storage service)."""
    given = id_or_name(volume)
    if given is not None:
        return given

    async def named(client: "Client") -> uuid.UUID:
        return (await find_volume(client, volume, timeout=timeout)).volume_id

    return talk(named)


def volume_names(*, timeout: float = 15.0) -> dict[str, str]:
    """Every volume's name by its id (as text), expunged ones too, for lists that show volumes; empty when the
    storage service does not answer (the lists then show ids)."""
    from schemas.storage_queries import ListVolumes, VolumesListed

    async def work(client: "Client") -> dict[str, str]:
        listed = await client.ask(ListVolumes(include_expunged=True), VolumesListed, timeout=timeout)
        return {str(info.volume_id): info.name for info in listed.volumes}

    return talk_if_answered(work, {})


@app.command("list")
def list_volumes(
    pool: Annotated[str | None, typer.Option(help="Only the volumes of this pool (id or name).")] = None,
    vm: Annotated[str | None, typer.Option(help="Only the volumes of this VM (id or name, `strata vm list`).")] = None,
    include_expunged: Annotated[bool, typer.Option("--all", help="Include expunged volumes.")] = False,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 15.0,
) -> None:
    """List volumes with their state, size and pool.

    Example: strata volume list --pool fast-1
    """
    from schemas.storage_queries import ListVolumes, VolumesListed

    async def work(client: "Client") -> tuple[VolumesListed, dict[uuid.UUID, str], dict[uuid.UUID, str]]:
        from schemas.storage_queries import ListPools, PoolsListed
        from services.cli.host import known_hosts, vm_id_of

        hosts = await known_hosts(client, timeout=timeout) if vm or not as_json else ()
        vm_id = vm_id_of(hosts, vm) if vm else None
        pool_id = (await find_pool(client, pool, timeout=timeout)).pool_id if pool else None
        query = ListVolumes(pool_id=pool_id, vm_id=vm_id, include_expunged=include_expunged)
        listed = await client.ask(query, VolumesListed, timeout=timeout)
        pools = await client.ask(ListPools(), PoolsListed, timeout=timeout) if not as_json else None
        vm_names = {known.vm_id: known.name for info in hosts for known in info.vms}
        return listed, {each.pool_id: each.name for each in pools.pools} if pools else {}, vm_names

    listed, pool_names, vm_names = talk(work)
    volumes = list(listed.volumes)
    if as_json:
        print_json(volumes)
        return
    table = listing("id", "name", "state", "size", "pool", "vm")
    for info in volumes:
        table.add_row(
            str(info.volume_id),
            info.name,
            _state(info.state),
            human_bytes(info.size_bytes),
            pool_names.get(info.pool_id, str(info.pool_id)) if info.pool_id else "",
            vm_names.get(info.vm_id, str(info.vm_id)) if info.vm_id else "",
        )
    console.print(table)


@app.command("show")
def show(volume: VolumeArgument, as_json: JsonOption = False, timeout: TimeoutOption = 15.0) -> None:
    """Show one volume.

    Example: strata volume show data-1
    """

    async def work(client: "Client") -> "VolumeInfo":
        return await find_volume(client, volume, timeout=timeout)

    print_record(talk(work), as_json)


@app.command("resize")
def resize(
    volume: VolumeArgument,
    size: Annotated[str, typer.Argument(help="The new virtual size: 20G, 512M, or bytes.")],
    allow_shrink: Annotated[
        bool,
        typer.Option(
            help="Shrink: the data past the new end is lost. Only pools whose plugin has the `shrink` capability "
            "can (`strata plugins show NAME`)."
        ),
    ] = False,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 120.0,
) -> None:
    """Grow (or, with --allow-shrink, shrink) a volume.

    Example: strata volume resize data-1 20G
    """
    new_size = parse_size(size)

    async def work(client: "Client") -> VolumeResized:
        info = await find_volume(client, volume, timeout=timeout)
        # Whether a shrink may happen (the pool's plugin can, and --allow-shrink was given) the storage service says.
        command = ResizeVolume(volume_id=info.volume_id, new_size_bytes=new_size, allow_shrink=allow_shrink)
        with _progress() as progress:
            progress.add_task(f"resizing {info.name} to {human_bytes(new_size)}", total=None)
            resized = await client.send(command, (VolumeResized,), (VolumeResizeFailed,), timeout=timeout)
        assert isinstance(resized, VolumeResized)
        return resized

    resized = talk(work)
    if as_json:
        print_json(resized)
        return
    console.print(f"volume {volume}: {human_bytes(resized.old_size_bytes)} → {human_bytes(resized.new_size_bytes)}")


@app.command("delete")
def delete(
    volume: VolumeArgument,
    cascade: Annotated[
        bool, typer.Option("--cascade", help="Delete its snapshots and snapshot policies first.")
    ] = False,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 120.0,
) -> None:
    """Delete a volume (its data on the pool are removed); one with snapshots or policies is refused, naming them,
    unless --cascade deletes them first.

    Example: strata volume delete data-1 --cascade
    """
    from services.cli.volume_dependents import delete_dependents, dependents_of, wait_unlocked

    async def work(client: "Client") -> VolumeDeleted:
        info = await find_volume(client, volume, timeout=timeout)
        dependents = await dependents_of(client, info.volume_id, timeout=timeout)
        refusal = dependents.refusal(info.name)
        if refusal is not None and not cascade:
            raise refusal
        if refusal is not None:
            with errors.status(f"deleting the snapshots and policies of {info.name} ..."):
                await delete_dependents(client, dependents, timeout=timeout)
                await wait_unlocked(info.volume_id, timeout=timeout)
        with errors.status(f"deleting {info.name} ..."):
            deleted = await client.send(
                DeleteVolume(volume_id=info.volume_id), (VolumeDeleted,), (VolumeDeleteFailed,), timeout=timeout
            )
        assert isinstance(deleted, VolumeDeleted)
        return deleted

    deleted = talk(work)
    if as_json:
        print_json(deleted)
        return
    console.print(f"volume {as_given(volume, deleted.volume_id)} deleted")


def _state(state: VolumeState) -> str:
    colour = {VolumeState.READY: "green", VolumeState.EXPUNGED: "dim", VolumeState.DESTROY: "yellow"}.get(state)
    return f"[{colour}]{state.value}[/{colour}]" if colour else state.value
