"""`strata volume migrate VOLUME --pool DEST`: move a volume to another pool (the migrate-volume saga), with a
progress bar per phase of the copy (the agents' `agent.copy.progressed` events of the operation)."""

import asyncio
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer

from services.cli.pool import find_pool
from services.cli.talking import JsonOption, TimeoutOption, console, errors, human_bytes, print_json, talk
from services.cli.volume import find_volume

if TYPE_CHECKING:  # messages are imported when a command runs, so that `strata --help` stays fast
    from rich.progress import Progress, TaskID

    from schemas.migration import VolumeMigrated
    from services.cli.sending import Client

# How often the bars catch up with the progress events recorded (a display refresh, not a wait for a condition).
REFRESH_SECONDS = 0.2


def migrate(
    volume: Annotated[str, typer.Argument(help="The volume's id or name.")],
    pool: Annotated[str, typer.Option("--pool", help="The destination pool's id or name.")],
    staged: Annotated[
        bool,
        typer.Option("--staged", help="Copy through the zone's image store even where one agent reaches both pools."),
    ] = False,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 10800.0,
) -> None:
    """Move a volume to another pool; it keeps its id. One agent that reaches both pools copies it directly;
    otherwise it goes through the zone's image store (the fallback).

    Example: strata volume migrate data-1 --pool fast-2
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from schemas.migration import MigrateVolume, VolumeMigrated, VolumeMigrateFailed

    async def work(client: "Client") -> "tuple[VolumeMigrated, str]":
        info = await find_volume(client, volume, timeout=min(timeout, 15.0))
        source = await find_pool(client, str(info.pool_id), timeout=min(timeout, 15.0)) if info.pool_id else None
        target = await find_pool(client, pool, timeout=min(timeout, 15.0))
        envelope = await client.publish(MigrateVolume(volume_id=info.volume_id, pool_id=target.pool_id, staged=staged))
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
        with Progress(*columns, console=errors, transient=as_json) as progress:
            follower = asyncio.create_task(follow(client, progress, envelope.correlation_id, info.pool_id))
            try:
                done = await client.outcome(envelope, (VolumeMigrated,), (VolumeMigrateFailed,), timeout=timeout)
            finally:
                follower.cancel()
        assert isinstance(done, VolumeMigrated)
        moved = f"from pool {source.name if source else done.source_pool_id} to pool {target.name}"
        return done, f"volume {info.name} ({info.volume_id}) migrated {moved}"

    migrated, said = talk(work)
    if as_json:
        print_json(migrated)
        return
    console.print(
        f"{said} ({migrated.method.value}, {human_bytes(migrated.size_bytes)}); its source copy"
        f"{' and staged copy are' if migrated.method.value == 'staged' else ' is'} deleted"
    )


async def follow(client: "Client", progress: "Progress", correlation_id: UUID, source_pool_id: UUID | None) -> None:
    """Keep one bar per phase of the copy up to date with the operation's progress events."""
    from schemas.agent import CopyProgressed, CopyStage

    labels = {
        (True, CopyStage.POOL): "copy out: reading the source pool",
        (True, CopyStage.STORE): "copy out: writing the staging store",
        (False, CopyStage.STORE): "copy in: reading the staging store",
        (False, CopyStage.POOL): "copy in: writing the destination pool",
    }
    bars: dict[tuple[bool, CopyStage], TaskID] = {}
    seen = 0
    while True:
        events = client.watch.events
        for envelope in events[seen:]:
            payload = envelope.payload
            if envelope.correlation_id != correlation_id or not isinstance(payload, CopyProgressed):
                continue
            phase = (payload.pool_id == source_pool_id, payload.stage)
            if phase not in bars:
                bars[phase] = progress.add_task(labels[phase], total=payload.total_bytes or None)
            progress.update(bars[phase], completed=payload.done_bytes, total=payload.total_bytes or None)
        seen = len(events)
        await asyncio.sleep(REFRESH_SECONDS)
