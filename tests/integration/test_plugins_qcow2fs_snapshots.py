"""qcow2fs snapshots on real qemu-img chains: delta and full, revert in place, delete, coalesce with crashes."""

import asyncio
import hashlib
import threading
from pathlib import Path

import pytest

from plugins.qcow2fs import Qcow2fsConfig, Qcow2fsDriver
from plugins.qcow2fs import coalesce as coalescing
from plugins.qcow2fs.chain import Layers, scan_layers
from plugins.qcow2fs.context import PoolContext
from plugins.sdk import faults
from plugins.sdk.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from plugins.sdk.types import SnapshotKind
from tests.helpers import assert_eventually
from tests.integration.plugins_qcow2fs_support import MIB, driver, guest_write, read_all, run

pytestmark = pytest.mark.integration
__all__ = ["driver"]


async def _volume_with_two_deltas(driver: Qcow2fsDriver) -> str:
    """Volume content: 0x11 in MiB 0 at s1; 0x22 in MiB 1 at s2; 0x33 in MiB 2 in the active layer."""
    volume = await driver.create_volume("vol-1", 8 * MIB)
    await guest_write(volume.path, 0x11, 0, MIB)
    await driver.create_snapshot("s1", "vol-1", SnapshotKind.DELTA)
    await guest_write(volume.path, 0x22, MIB, MIB)
    await driver.create_snapshot("s2", "vol-1", SnapshotKind.DELTA)
    await guest_write(volume.path, 0x33, 2 * MIB, MIB)
    return volume.path


def _expected(*patterns: int) -> bytes:
    data = b"".join(bytes([p]) * MIB for p in patterns)
    return data + bytes(8 * MIB - len(data))


async def test_delta_snapshots_build_a_real_backing_chain(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    path = await _volume_with_two_deltas(driver)
    chain = await driver.describe_chain("vol-1")
    assert [link.snapshot_id for link in chain.links] == [None, "s2", "s1"]
    assert chain.links[0].active
    assert chain.links[0].path == path
    assert await read_all(path, tmp_path) == _expected(0x11, 0x22, 0x33)
    again = await driver.create_snapshot("s2", "vol-1", SnapshotKind.DELTA)
    assert again.snapshot_id == "s2"
    assert len((await driver.describe_chain("vol-1")).links) == 3
    with pytest.raises(AlreadyExists):
        await driver.create_snapshot("s2", "vol-1", SnapshotKind.FULL)


async def test_revert_in_place_keeps_the_volume_path(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    path = await _volume_with_two_deltas(driver)
    reverted = await driver.revert_to_snapshot("vol-1", "s1")
    assert reverted.path == path
    assert await read_all(path, tmp_path) == _expected(0x11)
    await driver.revert_to_snapshot("vol-1", "s1")
    assert await read_all(path, tmp_path) == _expected(0x11)
    with pytest.raises(NotFound):
        await driver.revert_to_snapshot("vol-1", "nope")


async def test_full_snapshot_is_standalone_and_revertible(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    volume = await driver.create_volume("vol-1", 8 * MIB)
    await guest_write(volume.path, 0x44, 0, MIB)
    snapshot = await driver.create_snapshot("full-1", "vol-1", SnapshotKind.FULL)
    assert snapshot.kind is SnapshotKind.FULL
    await guest_write(volume.path, 0x55, 0, MIB)
    await driver.revert_to_snapshot("vol-1", "full-1")
    assert await read_all(volume.path, tmp_path) == _expected(0x44)


async def test_delete_middle_snapshot_then_coalesce_shortens_the_chain(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    path = await _volume_with_two_deltas(driver)
    await driver.delete_snapshot("s1")
    await driver.delete_snapshot("s1")
    assert len((await driver.describe_chain("vol-1")).links) == 3
    chain = await driver.coalesce("vol-1")
    assert [link.snapshot_id for link in chain.links] == [None, "s2"]
    assert await read_all(path, tmp_path) == _expected(0x11, 0x22, 0x33)
    assert (await driver.coalesce("vol-1")) == chain
    await driver.revert_to_snapshot("vol-1", "s2")
    assert await read_all(path, tmp_path) == _expected(0x11, 0x22)


@pytest.mark.parametrize("point", ["qcow2fs.coalesce.after_commit", "qcow2fs.coalesce.after_pivot"])
async def test_coalesce_crash_then_recall_reconciles(driver: Qcow2fsDriver, tmp_path: Path, point: str) -> None:
    path = await _volume_with_two_deltas(driver)
    await driver.delete_snapshot("s2")
    with faults.armed(point), pytest.raises(faults.InjectedCrash):
        await driver.coalesce("vol-1")
    assert await read_all(path, tmp_path) == _expected(0x11, 0x22, 0x33)
    chain = await driver.coalesce("vol-1")
    assert [link.snapshot_id for link in chain.links] == [None, "s1"]
    assert await read_all(path, tmp_path) == _expected(0x11, 0x22, 0x33)
    await driver.revert_to_snapshot("vol-1", "s1")
    assert await read_all(path, tmp_path) == _expected(0x11)


def _deleted_files_held(directory: Path) -> list[str]:
    """Files under `directory` that this process still holds open after they were unlinked or replaced."""
    held = []
    for descriptor in Path("/proc/self/fd").iterdir():
        try:
            target = descriptor.readlink()
        except FileNotFoundError:
            continue  # closed while listing
        if str(target).startswith(str(directory)) and str(target).endswith(" (deleted)"):
            held.append(str(target))
    return held


@pytest.mark.parametrize("point", [None, "qcow2fs.coalesce.after_pivot"])
async def test_coalesce_gives_the_merged_childs_old_file_back(
    driver: Qcow2fsDriver, tmp_path: Path, point: str | None
) -> None:
    """The old file is freed after the call returns (or crashes after the pivot), never kept open for good."""
    await _volume_with_two_deltas(driver)
    await driver.delete_snapshot("s1")
    if point is None:
        await driver.coalesce("vol-1")
    else:
        with faults.armed(point), pytest.raises(faults.InjectedCrash):
            await driver.coalesce("vol-1")
    await driver.stats()  # waits for what coalesce released in the background
    assert _deleted_files_held(tmp_path / "pool") == []


async def test_a_coalesce_cancelled_during_its_pivot_still_gives_the_old_file_back(
    driver: Qcow2fsDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _volume_with_two_deltas(driver)
    await driver.delete_snapshot("s1")
    in_pivot, go_on = threading.Event(), threading.Event()
    scans = 0

    def scan_held_in_the_pivot(context: PoolContext, volume_id: str) -> Layers:
        nonlocal scans
        scans += 1
        if scans == 2:  # the scan right after the rename, in the pivot's thread
            in_pivot.set()
            go_on.wait(timeout=30)
        return scan_layers(context, volume_id)

    monkeypatch.setattr(coalescing, "scan_layers", scan_held_in_the_pivot)
    task = asyncio.create_task(driver.coalesce("vol-1"))
    assert await asyncio.to_thread(in_pivot.wait, 30)
    task.cancel()
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_eventually(lambda: not _deleted_files_held(tmp_path / "pool"), what="the old file released")
    chain = await driver.coalesce("vol-1")
    assert [link.snapshot_id for link in chain.links] == [None, "s2"]


async def test_a_hidden_layer_with_two_children_is_never_merged(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    path = await _volume_with_two_deltas(driver)
    await driver.revert_to_snapshot("vol-1", "s1")
    await guest_write(path, 0x66, 3 * MIB, MIB)
    await driver.delete_snapshot("s1")
    chain = await driver.coalesce("vol-1")
    assert [link.snapshot_id for link in chain.links] == [None, None]
    assert chain.links[1].children == 2
    assert await read_all(path, tmp_path) == _expected(0x11, 0, 0, 0x66)
    await driver.revert_to_snapshot("vol-1", "s2")
    assert await read_all(path, tmp_path) == _expected(0x11, 0x22)


async def test_snapshot_crash_after_freeze_is_finished_by_a_recall(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    volume = await driver.create_volume("vol-1", 8 * MIB)
    await guest_write(volume.path, 0x11, 0, MIB)
    with faults.armed("qcow2fs.snapshot.after_freeze"), pytest.raises(faults.InjectedCrash):
        await driver.create_snapshot("s1", "vol-1", SnapshotKind.DELTA)
    with pytest.raises(NotFound):
        await driver.get_snapshot("s1")
    await driver.create_snapshot("s1", "vol-1", SnapshotKind.DELTA)
    assert await read_all(volume.path, tmp_path) == _expected(0x11)
    assert len((await driver.describe_chain("vol-1")).links) == 2


async def test_maintenance_refuses_changes(driver: Qcow2fsDriver) -> None:
    await driver.create_volume("vol-1", 8 * MIB)
    await driver.enter_maintenance()
    with pytest.raises(FailedPrecondition):
        await driver.create_snapshot("s1", "vol-1", SnapshotKind.DELTA)
    with pytest.raises(FailedPrecondition):
        await driver.create_volume("vol-2", 8 * MIB)
    await driver.cancel_maintenance()
    await driver.create_snapshot("s1", "vol-1", SnapshotKind.DELTA)
    with pytest.raises(InvalidArgument):
        await driver.create_snapshot("../escape", "vol-1", SnapshotKind.DELTA)


async def test_coalesce_without_room_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "tight-pool"
    root.mkdir()
    tight = Qcow2fsDriver(Qcow2fsConfig(path=root, reserve_bytes=2**62))
    await tight.add_pool("pool-tight")
    path = await _volume_with_two_deltas(tight)
    await tight.delete_snapshot("s1")
    before = await tight.describe_chain("vol-1")
    with pytest.raises(ResourceExhausted):
        await tight.coalesce("vol-1")
    assert await tight.describe_chain("vol-1") == before
    assert await read_all(path, tmp_path) == _expected(0x11, 0x22, 0x33)


async def test_a_template_under_the_chain_is_never_written(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    template = tmp_path / "template.qcow2"
    await run("qemu-img", "create", "-q", "-f", "qcow2", str(template), str(8 * MIB))
    await guest_write(template, 0x11, 0, MIB)
    checksum = hashlib.sha256(template.read_bytes()).hexdigest()
    volume = await driver.create_volume("vol-1", 8 * MIB, template=template)
    await driver.create_snapshot("s1", "vol-1", SnapshotKind.DELTA)
    await guest_write(volume.path, 0x22, MIB, MIB)
    await driver.create_snapshot("s2", "vol-1", SnapshotKind.DELTA)
    await guest_write(volume.path, 0x33, 2 * MIB, MIB)
    await driver.delete_snapshot("s1")
    await driver.delete_snapshot("s2")
    chain = await driver.coalesce("vol-1")
    assert len(chain.links) == 1
    assert await read_all(volume.path, tmp_path) == _expected(0x11, 0x22, 0x33)
    assert hashlib.sha256(template.read_bytes()).hexdigest() == checksum


async def test_a_snapshot_reports_what_it_holds_on_the_pool_not_the_virtual_size(driver: Qcow2fsDriver) -> None:
    volume = await driver.create_volume("vol-sparse", 64 * MIB)
    await guest_write(volume.path, 0x5A, 0, MIB)
    full = await driver.create_snapshot("f1", "vol-sparse", SnapshotKind.FULL)
    assert full.size_bytes == 64 * MIB
    assert full.physical_size_bytes is not None
    assert MIB <= full.physical_size_bytes < 4 * MIB  # one MiB written, plus qcow2 metadata
    await guest_write(volume.path, 0x5B, 8 * MIB, 2 * MIB)
    delta = await driver.create_snapshot("d1", "vol-sparse", SnapshotKind.DELTA)
    assert delta.physical_size_bytes is not None
    assert 3 * MIB <= delta.physical_size_bytes < 6 * MIB  # the clusters its layer holds (3 MiB written), not 64 MiB
    again = await driver.create_snapshot("d1", "vol-sparse", SnapshotKind.DELTA)
    assert again == delta
