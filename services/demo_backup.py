"""The demo's backup chapter: back a volume up, change it, back it up again (reading only what changed where the
chain tells), restore that backup to a new volume, compare the bytes, and verify the backup's chunks."""

import uuid
from pathlib import Path

from rich.console import Console

from schemas.backup import (
    AddBackupRepository,
    BackupCreated,
    BackupCreateFailed,
    BackupRepositoryAdded,
    BackupRepositoryAddFailed,
    BackupVerified,
    BackupVerifyFailed,
    CreateBackup,
    VerifyBackup,
)
from schemas.backup_restores import BackupRestored, BackupRestoreFailed, RestoreBackup
from schemas.storage_queries import VolumeInfo
from services.cli.backup import reuse_line
from services.cli.sending import Client
from services.demo_data import checksum, write_pattern

TIMEOUT = 120.0  # an upper bound on a loaded machine, not an expected duration
CHANGED = 0x3C  # the byte written between the two backups


async def backup_chapter(
    console: Console, client: Client, workdir: Path, *, zone_id: uuid.UUID, host: str, volume: VolumeInfo
) -> bool:
    """Tell the backup story on `volume`; True when the restored bytes are the backed-up ones and verify is clean."""
    console.rule("backups: full, changed, incremental, restore, verify")
    store = workdir / "backups"
    store.mkdir()
    repository_id = uuid.uuid4()
    await client.send(
        AddBackupRepository(
            repository_id=repository_id,
            name="demo-backups",
            plugin="fsbackup",
            config={"path": str(store)},
            zone_id=zone_id,
        ),
        (BackupRepositoryAdded,),
        (BackupRepositoryAddFailed,),
        timeout=TIMEOUT,
    )
    console.print(f"[green]✓[/green] backup repository demo-backups added (fsbackup in {store})")
    path = Path(str(volume.locator))

    async def back_up() -> BackupCreated:
        command = CreateBackup(backup_id=uuid.uuid4(), volume_id=volume.volume_id, repository_id=repository_id)
        created = await client.send(command, (BackupCreated,), (BackupCreateFailed,), timeout=TIMEOUT)
        assert isinstance(created, BackupCreated)
        console.print(f"[green]✓[/green] {created.kind.value} backup of {volume.name}: {reuse_line(created)}")
        return created

    await back_up()
    await write_pattern(path, CHANGED, offset=4 * 1024 * 1024, length=1024 * 1024)
    expected = await checksum(path, workdir)
    console.print(f"[green]✓[/green] wrote 1 MiB of 0x{CHANGED:02X} into {volume.name}")
    incremental = await back_up()

    restored_id = uuid.uuid4()
    restored = await client.send(
        RestoreBackup(
            restore_id=uuid.uuid4(),
            backup_id=incremental.backup_id,
            volume_id=restored_id,
            name=f"{volume.name}-restored",
            zone_id=zone_id,
            host=host,
        ),
        (BackupRestored,),
        (BackupRestoreFailed,),
        timeout=TIMEOUT,
    )
    assert isinstance(restored, BackupRestored)
    found = await checksum(path.parent.parent / str(restored_id) / path.name, workdir)
    same = found == expected
    mark = "[green]✓[/green]" if same else "[red]✗[/red]"
    console.print(
        f"{mark} restored to a new volume (checked against the manifest): sha256 {found[:16]}… "
        f"(expected {expected[:16]}…)"
    )
    verified = await client.send(
        VerifyBackup(backup_id=incremental.backup_id), (BackupVerified,), (BackupVerifyFailed,), timeout=TIMEOUT
    )
    assert isinstance(verified, BackupVerified)
    sound = not verified.bad
    mark = "[green]✓[/green]" if sound else "[red]✗[/red]"
    console.print(
        f"{mark} verify re-read {verified.chunks} chunks: " + ("all sound" if sound else f"{len(verified.bad)} bad")
    )
    return same and sound
