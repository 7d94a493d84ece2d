"""`strata template` and `strata iso`: register from a URL (with a progress bar until every store of the zone has
it), list, show and delete templates and ISOs (the image service downloads, checks and keeps them)."""

import hashlib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from schemas.errors import InvalidArgument
from schemas.image import (
    CopyImage,
    CreateImageFromVolume,
    DeleteImage,
    DownloadState,
    ImageCopyAccepted,
    ImageCopyFailed,
    ImageDeleted,
    ImageDeleteFailed,
    ImageDownloadFailed,
    ImageFormat,
    ImageKind,
    ImageRegistered,
    ImageRegisterFailed,
    RegisterImage,
)
from services.cli.image_downloads import Followed, find_image, follow_downloads, report_downloads
from services.cli.image_export import export_command
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
    print_json,
    print_record,
    talk,
    the_only,
    zone_id,
)

if TYPE_CHECKING:  # queries and the bus are imported when a command runs, so that `strata --help` stays fast
    from schemas.image_queries import ImageInfo
    from schemas.snapshot_queries import SnapshotInfo
    from services.cli.sending import Client


def kind_app(kind: ImageKind) -> typer.Typer:  # noqa: PLR0915  # the group's commands are closures over its kind
    """The command group of one kind of image (`strata template`, `strata iso`)."""
    noun = kind.value
    app = typer.Typer(
        help=f"{'Templates' if kind is ImageKind.TEMPLATE else 'ISOs'}: images in a zone's image stores.",
        no_args_is_help=True,
    )
    default_format = ImageFormat.QCOW2 if kind is ImageKind.TEMPLATE else ImageFormat.ISO

    @app.command("register")
    def register(  # noqa: PLR0917  # typer makes each parameter an option or argument
        name: Annotated[str, typer.Argument(help=f"The {noun}'s name, unique in its zone.")],
        url: Annotated[str, typer.Option("--url", help="http(s):// URL the image stores download it from.")],
        image_format: Annotated[
            ImageFormat, typer.Option("--format", help="Its format (checked after download).")
        ] = default_format,
        checksum: Annotated[
            str | None, typer.Option(help="{SHA-256}<hex>, {SHA-512}<hex> or an MD5 (CloudStack's form).")
        ] = None,
        zone: Annotated[str, typer.Option(help="The zone (a UUID or a name).")] = "default",
        wait: Annotated[bool, typer.Option(help="Follow the download until every store has it.")] = True,
        as_json: JsonOption = False,
        timeout: TimeoutOption = 3600.0,
    ) -> None:
        """Register from a URL: every image store of the zone downloads it and checks checksum and format."""
        try:
            command = RegisterImage(
                image_id=uuid.uuid4(),
                name=name,
                kind=kind,
                format=image_format,
                zone_id=zone_id(zone),
                url=url,
                checksum=checksum,
            )
        except ValueError as error:
            fail(invalid(error))

        async def work(client: "Client") -> tuple[ImageRegistered, Followed]:
            envelope = await client.publish(command)
            registered = await client.outcome(envelope, (ImageRegistered,), (ImageRegisterFailed,), timeout=30.0)
            assert isinstance(registered, ImageRegistered)
            if not wait:
                return registered, Followed()
            followed = await follow_downloads(
                client,
                registered.image_id,
                registered.name,
                registered.store_ids,
                envelope.correlation_id,
                timeout=timeout,
            )
            return registered, followed

        registered, outcomes = talk(work)
        report_downloads(noun, name, registered, outcomes, as_json=as_json, wait=wait)

    app.command("export")(export_command(kind))

    @app.command("upload")
    def upload(  # noqa: PLR0917  # typer makes each parameter an option or argument
        name: Annotated[str, typer.Argument(help=f"The {noun}'s name, unique in its zone.")],
        file: Annotated[Path, typer.Argument(help="The local file.", exists=True, dir_okay=False, readable=True)],
        image_format: Annotated[
            ImageFormat, typer.Option("--format", help="Its format (checked after upload).")
        ] = default_format,
        zone: Annotated[str, typer.Option(help="The zone (a UUID or a name).")] = "default",
        listen: Annotated[
            str, typer.Option(help="Address this command serves the file on; the image service must reach it.")
        ] = "127.0.0.1",
        as_json: JsonOption = False,
        timeout: TimeoutOption = 3600.0,
    ) -> None:
        """Upload a local file: it is streamed to every image store of the zone (served from here while they
        download it, with its SHA-256 computed here and checked there)."""
        from services.cli.file_server import serve_file

        digest = _sha256_of(file)

        async def work(client: "Client") -> tuple[ImageRegistered, Followed]:
            async with serve_file(file.resolve(), host=listen) as url:
                try:
                    command = RegisterImage(
                        image_id=uuid.uuid4(),
                        name=name,
                        kind=kind,
                        format=image_format,
                        zone_id=zone_id(zone),
                        url=url,
                        checksum=f"{{SHA-256}}{digest}",
                    )
                except ValueError as error:
                    raise invalid(error) from None
                envelope = await client.publish(command)
                registered = await client.outcome(envelope, (ImageRegistered,), (ImageRegisterFailed,), timeout=30.0)
                assert isinstance(registered, ImageRegistered)
                followed = await follow_downloads(
                    client,
                    registered.image_id,
                    registered.name,
                    registered.store_ids,
                    envelope.correlation_id,
                    timeout=timeout,
                )
                return registered, followed

        registered, outcomes = talk(work)
        report_downloads(noun, name, registered, outcomes, as_json=as_json, wait=True)

    if kind is ImageKind.TEMPLATE:

        @app.command("create")
        def create(
            name: Annotated[str, typer.Argument(help="The template's name, unique in the volume's zone.")],
            volume: Annotated[str, typer.Option(help="The volume (id or name) whose content it takes.")],
            snapshot: Annotated[
                str | None, typer.Option(help="Take this snapshot's content (its id or name) instead of the current.")
            ] = None,
            as_json: JsonOption = False,
            timeout: TimeoutOption = 3600.0,
        ) -> None:
            """Make a template of a volume (its VM stopped) or of one of its snapshots (the VM may run): the pool's
            agent copies it into an image store.

            Example: strata template create golden --volume web-1-root --snapshot before-upgrade
            """
            from services.cli.pool import find_pool
            from services.cli.volume import find_volume

            async def work(client: "Client") -> tuple[ImageRegistered, Followed]:
                info = await find_volume(client, volume, timeout=30.0)
                if info.pool_id is None:
                    raise InvalidArgument(f"volume {volume} is on no pool yet", field="volume")
                pool = await find_pool(client, str(info.pool_id), timeout=30.0)
                taken = await _snapshot_of(client, info.volume_id, snapshot) if snapshot else None
                try:
                    command = CreateImageFromVolume(
                        image_id=uuid.uuid4(),
                        name=name,
                        zone_id=info.zone_id,
                        volume_id=info.volume_id,
                        snapshot_id=taken.snapshot_id if taken else None,
                        pool_id=info.pool_id,
                        size_bytes=taken.size_bytes if taken else info.size_bytes,
                        host=pool.host,
                        cluster_id=pool.cluster_id,
                    )
                except ValueError as error:
                    raise invalid(error) from None
                envelope = await client.publish(command)
                registered = await client.outcome(envelope, (ImageRegistered,), (ImageRegisterFailed,), timeout=30.0)
                assert isinstance(registered, ImageRegistered)
                followed = await follow_downloads(
                    client,
                    registered.image_id,
                    registered.name,
                    registered.store_ids,
                    envelope.correlation_id,
                    timeout=timeout,
                )
                return registered, followed

            registered, outcomes = talk(work)
            report_downloads(noun, name, registered, outcomes, as_json=as_json, wait=True)

    @app.command("copy")
    def copy(
        image: Annotated[str, typer.Argument(help=f"The {noun}'s id or name.")],
        to_zone: Annotated[str, typer.Option("--to-zone", help="The destination zone (a UUID or a name).")],
        as_json: JsonOption = False,
        timeout: TimeoutOption = 3600.0,
    ) -> None:
        """Copy it to every image store of another zone (verified there against the source's SHA-256)."""
        destination = zone_id(to_zone)

        async def work(client: "Client") -> Followed:
            info = await find_image(client, image, kind, timeout=30.0)
            envelope = await client.publish(CopyImage(image_id=info.image_id, zone_id=destination))
            accepted = await client.outcome(envelope, (ImageCopyAccepted,), (ImageCopyFailed,), timeout=30.0)
            assert isinstance(accepted, ImageCopyAccepted)
            return await follow_downloads(
                client, info.image_id, info.name, accepted.store_ids, envelope.correlation_id, timeout=timeout
            )

        followed = talk(work)
        outcomes = followed.outcomes
        if as_json:
            print_json({"copies": [outcome.model_dump(mode="json") for outcome in outcomes]})
        for outcome in outcomes:
            store = followed.store(outcome.store_id)
            if isinstance(outcome, ImageDownloadFailed):
                errors.print(f"[red]DOWNLOAD_ERROR[/red] in store {store}: {outcome.error.message}")
            elif not as_json:
                console.print(f"{noun} {image}: DOWNLOADED to store {store} ({outcome.checksum} verified)")
        if not outcomes and not as_json:
            console.print(f"{noun} {image} is already in every image store of zone {to_zone}")
        if any(isinstance(outcome, ImageDownloadFailed) for outcome in outcomes):
            raise typer.Exit(1)

    @app.command("list")
    def list_images(
        zone: Annotated[str | None, typer.Option(help="Only this zone's.")] = None,
        as_json: JsonOption = False,
        timeout: TimeoutOption = 15.0,
    ) -> None:
        """List them with their state in each image store."""
        from schemas.image_queries import ImagesListed, ListImages

        async def work(client: "Client") -> ImagesListed:
            return await client.ask(
                ListImages(kind=kind, zone_id=zone_id(zone) if zone else None), ImagesListed, timeout=timeout
            )

        images = list(talk(work).images)
        if as_json:
            print_json(images)
            return
        table = listing("id", "name", "format", "size", "state per store")
        for info in images:
            states = ", ".join(f"{copy.store_name}: {_state(copy.state)}" for copy in info.copies)
            size = human_bytes(info.size_bytes) if info.size_bytes is not None else ""
            table.add_row(
                str(info.image_id),
                info.name + (" (deleting)" if info.deleting else ""),
                info.format.value,
                size,
                states,
            )
        console.print(table)

    @app.command("show")
    def show(
        image: Annotated[str, typer.Argument(help=f"The {noun}'s id or name.")],
        as_json: JsonOption = False,
        timeout: TimeoutOption = 15.0,
    ) -> None:
        """Show one image and its state in each store (with the reason of a DOWNLOAD_ERROR)."""

        async def work(client: "Client") -> "ImageInfo":
            return await find_image(client, image, kind, timeout=timeout)

        print_record(talk(work), as_json)

    @app.command("delete")
    def delete(
        image: Annotated[str, typer.Argument(help=f"The {noun}'s id or name.")],
        as_json: JsonOption = False,
        timeout: TimeoutOption = 120.0,
    ) -> None:
        """Delete it from every image store (refused while it is being downloaded)."""

        async def work(client: "Client") -> ImageDeleted:
            info = await find_image(client, image, kind, timeout=timeout)
            with errors.status(f"deleting {noun} {info.name} ..."):
                deleted = await client.send(
                    DeleteImage(image_id=info.image_id), (ImageDeleted,), (ImageDeleteFailed,), timeout=timeout
                )
            assert isinstance(deleted, ImageDeleted)
            return deleted

        deleted = talk(work)
        if as_json:
            print_json(deleted)
            return
        console.print(f"{noun} {as_given(image, deleted.image_id)} deleted")

    return app


async def _snapshot_of(client: "Client", volume_id: uuid.UUID, snapshot: str) -> "SnapshotInfo":
    """The volume's live snapshot named or numbered `snapshot`."""
    from schemas.snapshot_queries import ListSnapshots, SnapshotsListed

    wanted = id_or_name(snapshot)
    listed = await client.ask(ListSnapshots(volume_id=volume_id), SnapshotsListed, timeout=30.0)
    return the_only(
        [each for each in listed.snapshots if (each.snapshot_id == wanted if wanted else each.name == snapshot)],
        missing=f"volume {volume_id} has no snapshot {snapshot!r} (see `strata snapshot list --volume ...`)",
        ambiguous=lambda count: f"{count} snapshots are named {snapshot!r}: give its id",
        field="snapshot",
    )


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def _state(state: DownloadState) -> str:
    colour = {DownloadState.DOWNLOADED: "green", DownloadState.DOWNLOAD_ERROR: "red"}.get(state, "yellow")
    return f"[{colour}]{state.value}[/{colour}]"


app = kind_app(ImageKind.TEMPLATE)
iso_app = kind_app(ImageKind.ISO)
