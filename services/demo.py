"""The demo story: add a pool, give a VM three volumes, write, snapshot the VM, write more, revert it, check.

It runs every service in this process (`services.stack`) on the in-memory bus and an embedded PostgreSQL, or,
with STRATA_AMQP_URL and STRATA_DATABASE_URL set, on those servers (in a namespace of its own). The pool is a
qcow2fs directory under a temporary directory and the VM lives in libvirt's `test:///default` driver. Data are
written with qemu-io and read back through `qemu-img convert`; the story passes only when every volume holds,
after the revert, exactly the bytes it held when the snapshot was taken.
"""

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from bus.memory import MemoryTransport
from bus.ports import Transport
from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from sagas.work import saga_id_for
from schemas import StrataError
from schemas.snapshot import (
    CreateSnapshot,
    CreateVmSnapshot,
    RevertVmToSnapshot,
    SnapshotCreated,
    SnapshotCreateFailed,
    VmReverted,
    VmRevertFailed,
    VmSnapshotCreated,
    VmSnapshotCreateFailed,
    VolumeSnapshotPair,
)
from schemas.storage import (
    AddPool,
    CreateVolume,
    PoolAdded,
    PoolAddFailed,
    PoolScope,
    VolumeCreated,
    VolumeCreateFailed,
)
from schemas.storage_queries import ListVolumes, VolumeInfo, VolumesListed
from services.agent.settings import AgentSettings
from services.api.demo_serve import serve_console
from services.api.settings import ApiSettings
from services.cli.sending import Client
from services.demo_backup import backup_chapter
from services.demo_data import DataCheck, VirtualMachine, checksum, require_tools, write_pattern
from services.demo_migrate import migrate_and_coalesce
from services.demo_replay import replay_chapter
from services.demo_template import register_template
from services.embedded import embedded_postgres
from services.runtime.daemon import Settings
from services.runtime.logs import configure_logging
from services.runtime.settings import RuntimeSettings
from services.stack import System

HOST = "demo-host"
CLUSTER = "demo-cluster"
VOLUMES = 3
VOLUME_SIZE = 16 * 1024 * 1024
STEP_TIMEOUT = 60.0  # upper bounds on a loaded machine, not expected durations
REVERT_TIMEOUT = 120.0
BEFORE = 0x5A  # the byte the VM writes before the snapshot
AFTER = 0xA5  # the byte it writes after (the revert must undo it)


@dataclass
class Story:
    """What the story made so far, to check against and to clean up."""

    zone_id: uuid.UUID = field(default_factory=uuid.uuid4)
    pool_id: uuid.UUID = field(default_factory=uuid.uuid4)
    vm_id: uuid.UUID = field(default_factory=uuid.uuid4)
    volumes: list[VolumeInfo] = field(default_factory=list)
    pairs: list[VolumeSnapshotPair] = field(default_factory=list)
    saga_id: uuid.UUID | None = None


async def run_demo(console: Console, *, serve: bool = False) -> bool:
    """Run the story; return True only when every check passed. With `serve`, then serve the web console and the
    API (STRATA_API_PORT) on the demo's system until Ctrl-C; without, the API listens on a free port."""
    configure_logging("demo", level=os.environ.get("STRATA_LOG_LEVEL", "ERROR"), json=False)
    try:
        require_tools()
    except StrataError as error:
        console.print(f"[red]cannot run the demo:[/red] {error.message}")
        return False
    async with AsyncExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="strata-demo-"))
        stack.callback(shutil.rmtree, workdir, True)
        try:
            database_url, transport, where = await stack.enter_async_context(_servers())
            console.print(f"[bold]strata demo[/bold] on {where}")
            system = await System.start(
                database_url,
                transport,
                settings=Settings(
                    RuntimeSettings(secret_key_file=workdir / "secret.key"),
                    AgentSettings(host=HOST, cluster=CLUSTER),
                    ApiSettings() if serve else ApiSettings(port=0),
                ),
            )
            stack.push_async_callback(system.stop)
            console.print("  services running: " + ", ".join(name for name, _ in system.services))
            client = await stack.enter_async_context(Client(transport, owns_transport=False))
            vm = VirtualMachine()
            stack.callback(vm.remove)
            told = await _story(console, client, system, vm, workdir)
            if told and serve:
                await serve_console(console, system.services)
            return told
        except StrataError as error:
            console.print(f"[red]the demo failed:[/red] {type(error).__name__}: {error.message}")
            return False


@asynccontextmanager
async def _servers() -> AsyncIterator[tuple[str, Transport, str]]:
    amqp_url = os.environ.get("STRATA_AMQP_URL")
    database_url = os.environ.get("STRATA_DATABASE_URL")
    namespace = f"demo{uuid.uuid4().hex[:8]}"
    if amqp_url and database_url:
        transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="demo")
        try:
            yield database_url, transport, f"RabbitMQ (namespace {namespace}) and PostgreSQL from STRATA_*"
        finally:
            await transport.delete_namespace()  # the demo's namespace is its own: leave no queue behind
        return
    async with embedded_postgres() as embedded_url:
        yield (
            embedded_url,
            MemoryTransport(BusSettings(namespace=namespace)),
            "the in-memory bus and embedded PostgreSQL",
        )


async def _story(console: Console, client: Client, system: System, vm: VirtualMachine, workdir: Path) -> bool:
    story = Story()
    pool_dir = workdir / "pool"
    pool_dir.mkdir()
    await client.send(
        AddPool(
            pool_id=story.pool_id,
            name="demo-pool",
            plugin="qcow2fs",
            config={"path": str(pool_dir)},
            scope=PoolScope.HOST,
            zone_id=story.zone_id,
            cluster_id=CLUSTER,
            host=HOST,
            hypervisors=frozenset({"kvm"}),
        ),
        (PoolAdded,),
        (PoolAddFailed,),
        timeout=STEP_TIMEOUT,
    )
    console.print(f"[green]✓[/green] pool demo-pool added (qcow2fs in {pool_dir})")

    template_id = await register_template(
        console, client, zone_id=story.zone_id, workdir=workdir, size_bytes=VOLUME_SIZE
    )
    with _progress(console) as progress:
        task = progress.add_task(
            f"creating {VOLUMES} volumes for the VM (the root disk from the template)", total=VOLUMES
        )
        for index in range(VOLUMES):
            await client.send(
                CreateVolume(
                    volume_id=uuid.uuid4(),
                    name=f"demo-vm-disk{index}",
                    size_bytes=VOLUME_SIZE,
                    zone_id=story.zone_id,
                    cluster_id=CLUSTER,
                    host=HOST,
                    hypervisor="kvm",
                    vm_id=story.vm_id,
                    template_id=template_id if index == 0 else None,
                ),
                (VolumeCreated,),
                (VolumeCreateFailed,),
                timeout=STEP_TIMEOUT,
            )
            progress.advance(task)
    story.volumes = await _vm_volumes(client, story.vm_id)
    vm.define(story.vm_id, [Path(str(volume.locator)) for volume in story.volumes])
    vm.start()
    console.print(
        f"[green]✓[/green] VM {story.vm_id} running with {len(story.volumes)} volumes of {VOLUME_SIZE >> 20} MiB"
    )

    before = await _write_all(story, BEFORE, offset=0)
    console.print(f"[green]✓[/green] wrote 1 MiB of 0x{BEFORE:02X} into each volume")

    await _snapshot_vm(console, client, story)
    after = await _write_all(story, AFTER, offset=512 * 1024)
    if any(before[volume] == after[volume] for volume in before):
        console.print("[red]✗[/red] writing after the snapshot did not change a volume: the check would prove nothing")
        return False
    console.print(f"[green]✓[/green] wrote 1 MiB of 0x{AFTER:02X} over part of it after the snapshot")

    revert = RevertVmToSnapshot(vm_id=story.vm_id, vm_snapshot_id=uuid.uuid4(), host=HOST, snapshots=tuple(story.pairs))
    with _progress(console) as progress:
        progress.add_task("reverting the VM (revert saga: lock, stop, safety snapshots, revert, start)", total=None)
        envelope = await client.publish(revert)
        story.saga_id = saga_id_for(envelope.message_id)
        try:
            reverted = await client.outcome(envelope, (VmReverted,), (VmRevertFailed,), timeout=REVERT_TIMEOUT)
        except StrataError as error:
            console.print(f"[red]✗[/red] the revert failed: {error.message}")
            await _timeline(console, system, story.saga_id)
            return False
    assert isinstance(reverted, VmReverted)
    console.print(f"[green]✓[/green] VM reverted (restarted: {reverted.restarted})")

    story.volumes = await _vm_volumes(client, story.vm_id)
    checks = [
        DataCheck(volume.name, before[volume.volume_id], await checksum(Path(str(volume.locator)), workdir))
        for volume in story.volumes
    ]
    for check in checks:
        mark = "[green]✓[/green]" if check.passed else "[red]✗[/red]"
        console.print(f"{mark} {check.name}: sha256 {check.found[:16]}… (expected {check.expected[:16]}…)")
    running = vm.is_running()
    console.print(("[green]✓[/green]" if running else "[red]✗[/red]") + " the VM runs again")
    await _timeline(console, system, story.saga_id)
    replayed = story.saga_id is not None and await replay_chapter(console, system.pool, story.saga_id)
    reverted_back = all(check.passed for check in checks) and running and len(checks) == VOLUMES and replayed
    backed_up = await backup_chapter(
        console, client, workdir, zone_id=story.zone_id, host=HOST, volume=story.volumes[0]
    )
    migrated = await migrate_and_coalesce(
        console,
        client,
        zone_id=story.zone_id,
        source_pool_id=story.pool_id,
        workdir=workdir,
        host=HOST,
        cluster=CLUSTER,
    )
    passed = reverted_back and backed_up and migrated
    console.print(
        "[bold green]the data are back: demo passed[/bold green]" if passed else "[bold red]demo failed[/bold red]"
    )
    return passed


async def _vm_volumes(client: Client, vm_id: uuid.UUID) -> list[VolumeInfo]:
    listed = await client.ask(ListVolumes(vm_id=vm_id), VolumesListed, timeout=STEP_TIMEOUT)
    volumes = sorted(listed.volumes, key=lambda volume: volume.name)
    if len(volumes) != VOLUMES or any(volume.locator is None for volume in volumes):
        raise StrataError(f"expected {VOLUMES} placed volumes for the VM, the storage service lists {len(volumes)}")
    return volumes


async def _write_all(story: Story, pattern: int, *, offset: int) -> dict[uuid.UUID, str]:
    """Write 1 MiB of `pattern` at `offset` into every volume; return each volume's checksum afterwards."""
    sums: dict[uuid.UUID, str] = {}
    for volume in story.volumes:
        path = Path(str(volume.locator))
        await write_pattern(path, pattern, offset=offset, length=1024 * 1024)
        sums[volume.volume_id] = await checksum(path, path.parent)
    return sums


async def _snapshot_vm(console: Console, client: Client, story: Story) -> None:
    from sagas.definition import saga_registry

    if saga_registry.for_input(CreateVmSnapshot) is not None:  # the orchestrator takes VM snapshots (a saga)
        together = CreateVmSnapshot(
            vm_snapshot_id=uuid.uuid4(),
            vm_id=story.vm_id,
            name="demo-vm-snap",
            volume_ids=tuple(volume.volume_id for volume in story.volumes),
        )
        with _progress(console) as progress:
            progress.add_task(f"snapshotting the VM's {len(story.volumes)} volumes together", total=None)
            created = await client.send(together, (VmSnapshotCreated,), (VmSnapshotCreateFailed,), timeout=STEP_TIMEOUT)
        assert isinstance(created, VmSnapshotCreated)
        story.pairs.extend(created.snapshots)
        console.print(f"[green]✓[/green] VM snapshot taken ({len(story.pairs)} volume snapshots)")
        return
    # Otherwise a VM snapshot is one snapshot per volume, taken together while the VM's data stand still.
    with _progress(console) as progress:
        task = progress.add_task("snapshotting the VM's volumes", total=len(story.volumes))
        envelopes = []
        for volume in story.volumes:
            each = CreateSnapshot(snapshot_id=uuid.uuid4(), volume_id=volume.volume_id, name=f"{volume.name}-snap")
            envelopes.append((each, await client.publish(each)))
        for each, envelope in envelopes:
            await client.outcome(envelope, (SnapshotCreated,), (SnapshotCreateFailed,), timeout=STEP_TIMEOUT)
            story.pairs.append(VolumeSnapshotPair(volume_id=each.volume_id, snapshot_id=each.snapshot_id))
            progress.advance(task)
    console.print(f"[green]✓[/green] VM snapshot taken ({len(story.pairs)} volume snapshots)")


async def _timeline(console: Console, system: System, saga_id: uuid.UUID | None) -> None:
    # `strata saga show` draws from this export; saga.py names its drawing `_draw` (no public name yet).
    from services.cli.saga import _draw as draw_export

    if saga_id is None:
        return
    export: dict[str, Any] | None = await _saga_export(system, saga_id)  # the JSON export `strata saga show` draws
    if export is None:
        console.print(f"[red]no saga {saga_id} recorded[/red]")
        return
    console.rule("the revert saga's timeline (strata saga show)")
    draw_export(export)


async def _saga_export(system: System, saga_id: uuid.UUID) -> dict[str, Any] | None:  # JSON values of every kind
    from sagas.serialize import instance_to_json, step_to_json

    async with system.store.session() as session:
        instance = await session.get_instance(saga_id)
        if instance is None:
            return None
        return {
            "instance": instance_to_json(instance),
            "steps": [step_to_json(step) for step in await session.load_steps(saga_id)],
            "locks": [
                {"resource": lock.resource, "token": lock.token, "expires_at": lock.expires_at.isoformat()}
                for lock in await session.list_locks(saga_id)
            ],
            "events": [
                {"at": event.at.isoformat(), "kind": event.kind, "detail": event.detail}
                for event in await session.list_events(saga_id)
            ],
        }


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
