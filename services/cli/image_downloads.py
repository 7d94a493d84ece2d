"""Following an image's downloads from the CLI: find a template or ISO by name or id, show a progress bar per image
store until each store's download ended, and report the outcomes (`strata template|iso register|upload|create|copy`,
`strata volume create --template`)."""

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from schemas.image import (
    ImageDownloaded,
    ImageDownloadFailed,
    ImageDownloadProgressed,
    ImageKind,
    ImageRegistered,
)
from services.cli.talking import console, errors, human_bytes, id_or_name, print_json, the_only

if TYPE_CHECKING:  # queries and the bus are imported when a command runs, so that `strata --help` stays fast
    from schemas.image_queries import ImageInfo
    from services.cli.sending import Client

POLL_SECONDS = 0.25  # how often the progress bar looks at the latest figures


async def find_image(client: "Client", image: str, kind: ImageKind, *, timeout: float) -> "ImageInfo":
    """The template or ISO named or numbered `image`."""
    from schemas.image_queries import ImagesListed, ListImages

    wanted = id_or_name(image)
    listed = await client.ask(ListImages(image_id=wanted, kind=kind), ImagesListed, timeout=timeout)
    return the_only(
        [info for info in listed.images if wanted is not None or info.name == image],
        missing=f"no {kind.value} {image!r} (see `strata {kind.value} list`)",
        ambiguous=lambda count: f"{count} {kind.value}s are named {image!r}: give its id",
        field=kind.value,
    )


async def store_names(client: "Client", *, timeout: float) -> dict[uuid.UUID, str]:
    """Each image store's name by its id (empty when the image service does not answer: ids are shown then)."""
    from schemas.image_queries import ImageStoresListed, ListImageStores
    from services.cli.sending import NoAnswer

    try:
        listed = await client.ask(ListImageStores(), ImageStoresListed, timeout=timeout)
    except NoAnswer:
        return {}
    return {info.store_id: info.name for info in listed.stores}


@dataclass(frozen=True)
class Followed:
    """The downloads of one image that ended, and the stores' names (by id) to tell them by."""

    outcomes: list[ImageDownloaded | ImageDownloadFailed] = field(default_factory=list)
    names: dict[uuid.UUID, str] = field(default_factory=dict)

    def store(self, store_id: uuid.UUID) -> str:
        """The store's name, or its id where the image service gave no names."""
        return self.names.get(store_id, str(store_id))


async def follow_downloads(
    client: "Client",
    image_id: uuid.UUID,
    name: str,
    store_ids: tuple[uuid.UUID, ...],
    correlation_id: uuid.UUID,
    *,
    timeout: float,
) -> Followed:
    """Show a progress bar per store until each store's download ended; return the outcomes."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from services.cli.sending import NoAnswer

    outcomes: dict[uuid.UUID, ImageDownloaded | ImageDownloadFailed] = {}
    deadline = timeout
    names = await store_names(client, timeout=min(timeout, 15.0))
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=errors
    ) as bar:
        tasks = {
            store_id: bar.add_task(f"{name} -> {names.get(store_id, str(store_id)[:8])}", total=None)
            for store_id in store_ids
        }
        while len(outcomes) < len(tasks):
            for envelope in client.watch.events:
                payload = envelope.payload
                if envelope.correlation_id != correlation_id or getattr(payload, "image_id", None) != image_id:
                    continue
                if isinstance(payload, ImageDownloadProgressed) and payload.store_id in tasks:
                    bar.update(tasks[payload.store_id], completed=payload.done_bytes, total=payload.total_bytes)
                elif isinstance(payload, ImageDownloaded | ImageDownloadFailed) and payload.store_id in tasks:
                    outcomes[payload.store_id] = payload
                    if isinstance(payload, ImageDownloaded):
                        bar.update(tasks[payload.store_id], completed=payload.size_bytes, total=payload.size_bytes)
            if len(outcomes) == len(tasks):
                break
            if deadline <= 0:
                raise NoAnswer(f"the download did not end within {timeout:g}s: see `strata template show {image_id}`")
            try:
                await client.watch.wait_for(
                    correlation_id,
                    (ImageDownloaded, ImageDownloadFailed),
                    timeout=POLL_SECONDS,
                    where=lambda event: getattr(event, "store_id", None) not in outcomes,
                )
            except NoAnswer:
                deadline -= POLL_SECONDS
    return Followed(list(outcomes.values()), names)


def report_downloads(
    noun: str,
    name: str,
    registered: ImageRegistered,
    followed: Followed,
    *,
    as_json: bool,
    wait: bool,
) -> None:
    """Print a registration's outcome in each store; exit 1 if a store's download failed."""
    outcomes = followed.outcomes
    failed = [outcome for outcome in outcomes if isinstance(outcome, ImageDownloadFailed)]
    if as_json:
        print_json(
            {
                "registered": registered.model_dump(mode="json"),
                "downloads": [o.model_dump(mode="json") for o in outcomes],
            }
        )
    elif not wait:
        console.print(
            f"{noun} [bold]{name}[/bold] {registered.image_id} registered; "
            f"downloading to {len(registered.store_ids)} store(s)"
        )
    for outcome in outcomes:
        if isinstance(outcome, ImageDownloaded) and not as_json:
            console.print(
                f"{noun} [bold]{name}[/bold] {registered.image_id}: DOWNLOADED to store "
                f"{followed.store(outcome.store_id)} ({human_bytes(outcome.size_bytes)}, {outcome.checksum})"
            )
        elif isinstance(outcome, ImageDownloadFailed):
            errors.print(
                f"[red]DOWNLOAD_ERROR[/red] in store {followed.store(outcome.store_id)}: {outcome.error.message}",
                highlight=False,
            )
    if failed:
        raise typer.Exit(1)
