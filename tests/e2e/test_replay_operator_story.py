"""The replay tool's operator story, on every service in one process (as `strata demo` runs them) against the real
PostgreSQL and the in-memory bus, a qcow2fs pool in a temporary directory and a VM of libvirt's test driver.

A VM's revert fails at a plugin fault point (armed for every attempt the snapshot service makes) and compensates.
Then, as the developer on call would: `strata replay --volume V` shows it, with the compensation and the failure;
the sequence diagram file is written; the operation's export replays in a sandbox with no difference; and against
a deliberately changed revert saga (tests/replay/altered_revert.py) the same replay names the divergent step.
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
import pytest_asyncio

from bus.memory import MemoryTransport
from plugins.sdk import faults
from schemas.snapshot import (
    CreateVmSnapshot,
    RevertVmToSnapshot,
    VmReverted,
    VmRevertFailed,
    VmSnapshotCreated,
    VmSnapshotCreateFailed,
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
from schemas.storage_queries import ListVolumes, VolumesListed
from services.agent.settings import AgentSettings
from services.cli.sending import Client, CommandFailed
from services.demo_data import VirtualMachine
from services.runtime.daemon import Settings
from services.runtime.settings import RuntimeSettings
from services.stack import System
from tests.bus_fixtures import bus_settings

pytestmark = pytest.mark.e2e
HOST, CLUSTER = "replay-host", "replay-cluster"
FAULT = "qcow2fs.revert.before_switch"  # a volume's revert dies before switching to the reverted layer
TIMEOUT = 90.0
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Failed:
    """The revert that failed and compensated, and the volume it was about."""

    saga_volume: UUID
    vm_id: UUID
    outcome: object


@pytest_asyncio.fixture
async def failed_revert(database_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Failed]:
    for tool in ("qemu-img", "qemu-io"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install qemu-utils", pytrace=False)
    transport = MemoryTransport(bus_settings(namespace))
    settings = Settings(
        RuntimeSettings(secret_key_file=tmp_path / "secret.key"), AgentSettings(host=HOST, cluster=CLUSTER)
    )
    system = await System.start(database_url, transport, settings=settings, relay_poll=0.05)
    vm = VirtualMachine()
    try:
        async with Client(transport, owns_transport=False) as client:
            pool_dir = tmp_path / "pool"
            pool_dir.mkdir()
            zone_id, vm_id, volume_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            await client.send(
                AddPool(
                    pool_id=uuid.uuid4(),
                    name="replay-pool",
                    plugin="qcow2fs",
                    config={"path": str(pool_dir)},
                    scope=PoolScope.HOST,
                    zone_id=zone_id,
                    cluster_id=CLUSTER,
                    host=HOST,
                    hypervisors=frozenset({"kvm"}),
                ),
                (PoolAdded,),
                (PoolAddFailed,),
                timeout=TIMEOUT,
            )
            await client.send(
                CreateVolume(
                    volume_id=volume_id,
                    name="replay-disk",
                    size_bytes=1 << 20,
                    zone_id=zone_id,
                    cluster_id=CLUSTER,
                    host=HOST,
                    hypervisor="kvm",
                    vm_id=vm_id,
                ),
                (VolumeCreated,),
                (VolumeCreateFailed,),
                timeout=TIMEOUT,
            )
            listed = await client.ask(ListVolumes(vm_id=vm_id), VolumesListed, timeout=TIMEOUT)
            vm.define(vm_id, [Path(str(volume.locator)) for volume in listed.volumes])
            vm.start()
            taken = await client.send(
                CreateVmSnapshot(vm_snapshot_id=uuid.uuid4(), vm_id=vm_id, name="before", volume_ids=(volume_id,)),
                (VmSnapshotCreated,),
                (VmSnapshotCreateFailed,),
                timeout=TIMEOUT,
            )
            assert isinstance(taken, VmSnapshotCreated)
            # Every attempt at the volume's revert dies (the snapshot service asks the agent three times); the undo,
            # a revert to the safety snapshot, passes the point again unharmed.
            faults.arm(FAULT, times=3)
            revert = RevertVmToSnapshot(vm_id=vm_id, vm_snapshot_id=uuid.uuid4(), host=HOST, snapshots=taken.snapshots)
            envelope = await client.publish(revert)
            with pytest.raises(CommandFailed) as failed:
                await client.outcome(envelope, (VmReverted,), (VmRevertFailed,), timeout=TIMEOUT)
            assert faults.hits(FAULT) >= 3
            yield Failed(volume_id, vm_id, failed.value.error.message)
    finally:
        faults.disarm(FAULT)
        vm.remove()
        await system.stop()


def _strata(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """`strata ARGS` as the developer types it, at the top of the checkout (where --sagas finds tests.replay)."""
    strata = Path(sys.executable).parent / "strata"
    env = {**os.environ, "STRATA_DATABASE_URL": database_url, "COLUMNS": "200"}
    return subprocess.run(
        [str(strata), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


async def test_the_developer_on_call_sees_diagrams_exports_and_replays_a_compensated_revert(
    failed_revert: Failed, database_url: str, postgres_url: str, tmp_path: Path
) -> None:
    assert FAULT in str(failed_revert.outcome), failed_revert.outcome
    volume = str(failed_revert.saga_volume)
    diagram = tmp_path / "incident.html"
    export = tmp_path / "incident.jsonl"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _strata(*args, database_url=database_url)

    shown = await asyncio.to_thread(run, "replay", "--volume", volume, "--diagram", str(diagram))
    exported = await asyncio.to_thread(run, "replay", "--volume", volume, "export", str(export))
    same = await asyncio.to_thread(run, "replay", "sandbox", str(export), "--server", postgres_url)
    changed = await asyncio.to_thread(
        run,
        "replay",
        "sandbox",
        str(export),
        "--server",
        postgres_url,
        "--sagas",
        "tests.replay.altered_revert",
        "--json",
    )

    assert shown.returncode == 0, shown.stderr
    for seen in ("vm.snapshot.revert", "snapshot.revert", "saga.step.failed", "compensation", "vm.revert.failed"):
        assert seen in shown.stdout, f"{seen!r} not in the timeline:\n{shown.stdout}"
    page = diagram.read_text(encoding="utf-8")
    assert "<svg" in page
    assert "compensation" in page
    assert "<script" not in page
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert same.returncode == 0, same.stdout + same.stderr
    assert "vm.revert_to_snapshot v1" in same.stdout
    assert "replay the same" in same.stdout
    assert changed.returncode == 1, changed.stdout + changed.stderr
    reports = {report["name"]: report for report in map(json.loads, changed.stdout.splitlines())}
    assert reports["vm.snapshot"]["same"] is True
    revert = reports["vm.revert_to_snapshot"]
    assert revert["same"] is False
    assert revert["first_divergent_step"] is not None
    first = revert["differences"][0]
    assert first["type"] == "snapshot.create"
    assert first["step"] == revert["first_divergent_step"]
    assert first["changes"][0]["field"] == "name"
