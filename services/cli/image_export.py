"""`strata template|iso export NAME --file PATH` (or `--url URL`): the image service reads the image from one of its
stores, every chunk verified, and PUTs it to a URL: a pre-signed object URL or any HTTP server taking PUT, or with
`--file` a one-shot receiver this command runs, which writes the file and checks its SHA-256 against the service's."""

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from schemas.errors import FailedPrecondition, InvalidArgument
from schemas.image import ImageKind
from services.cli.talking import JsonOption, TimeoutOption, console, errors, human_bytes, print_json, talk

if TYPE_CHECKING:
    from schemas.image_exports import ImageExported
    from services.cli.sending import Client


def export_command(kind: ImageKind) -> Callable[..., None]:
    """The `export` command of one kind of image."""
    noun = kind.value

    def export(  # noqa: PLR0917  # typer makes each parameter an option or argument
        image: Annotated[str, typer.Argument(help=f"The {noun}'s id or name.")],
        file: Annotated[Path | None, typer.Option("--file", help="Write it to this local file.")] = None,
        url: Annotated[str | None, typer.Option("--url", help="PUT it to this http(s) URL instead.")] = None,
        listen: Annotated[
            str, typer.Option(help="With --file: the address the image service reaches this machine at.")
        ] = "127.0.0.1",
        as_json: JsonOption = False,
        timeout: TimeoutOption = 3600.0,
    ) -> None:
        """Export an image from its store: to a local file (checked against its SHA-256) or to a URL.

        Example: strata template export ubuntu-24.04 --file ./ubuntu-24.04.qcow2
        """
        from services.cli.talking import fail

        if (file is None) == (url is None):
            fail(InvalidArgument("give --file PATH or --url URL", field="file"))
        if file is not None and file.exists():
            fail(InvalidArgument(f"{file} exists: choose another path", field="file"))

        async def work(client: "Client") -> "ImageExported":
            from services.cli.file_receiver import receive_file

            if file is None:
                assert url is not None
                return await _export(client, image, kind, url, timeout=timeout)
            async with receive_file(file.resolve(), host=listen) as received:
                exported = await _export(client, image, kind, received.url, timeout=timeout)
            if received.sha256 is None or f"sha256:{received.sha256}" != exported.checksum:
                raise FailedPrecondition(
                    f"{file} does not hold what the image service sent (sha256:{received.sha256}, "
                    f"sent {exported.checksum}): it was removed",
                    field="file",
                )
            return exported

        exported = talk(work)
        if as_json:
            print_json(exported)
            return
        where = str(file) if file is not None else "the URL"
        console.print(f"{noun} {image} exported to {where}: {human_bytes(exported.size_bytes)}, {exported.checksum}")

    return export


async def _export(client: "Client", image: str, kind: ImageKind, url: str, *, timeout: float) -> "ImageExported":
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from schemas.image_exports import ExportImage, ImageExported, ImageExportFailed, ImageExportProgressed
    from services.cli.following import following
    from services.cli.image_downloads import find_image

    info = await find_image(client, image, kind, timeout=min(timeout, 30.0))
    envelope = await client.publish(ExportImage(export_id=uuid.uuid4(), image_id=info.image_id, url=url))
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task(f"exporting {info.name}", total=info.size_bytes)

        def moved(event: ImageExportProgressed) -> None:
            bar.update(task, completed=event.done_bytes, total=event.total_bytes)

        async with following(client, envelope.correlation_id, ImageExportProgressed, moved):
            outcome = await client.outcome(envelope, (ImageExported,), (ImageExportFailed,), timeout=timeout)
    assert isinstance(outcome, ImageExported)
    return outcome
