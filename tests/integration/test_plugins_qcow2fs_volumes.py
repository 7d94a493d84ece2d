"""qcow2fs volumes on real qemu-img: sparse, from a template, clone, resize, copy in and out with progress, stats."""

import os
from pathlib import Path

import pytest

from plugins.qcow2fs import Qcow2fsConfig, Qcow2fsDriver
from plugins.sdk import faults
from plugins.sdk.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from plugins.sdk.types import PoolState, TemplateMode, VolumeFormat
from tests.integration.plugins_qcow2fs_support import MIB, driver, guest_write, read_all, run

pytestmark = pytest.mark.integration
__all__ = ["driver"]


async def test_create_is_idempotent_and_a_conflict_is_refused(driver: Qcow2fsDriver) -> None:
    first = await driver.create_volume("vol-1", 16 * MIB)
    assert first.size_bytes == 16 * MIB
    assert first.allocated_bytes < MIB
    assert await driver.create_volume("vol-1", 16 * MIB) == first
    with pytest.raises(AlreadyExists):
        await driver.create_volume("vol-1", 32 * MIB)
    with pytest.raises(InvalidArgument):
        await driver.create_volume("vol-2", 1000)
    assert [v.volume_id for v in await driver.list_volumes()] == ["vol-1"]


async def test_a_crash_before_publishing_is_finished_by_a_recall(driver: Qcow2fsDriver) -> None:
    with faults.armed("qcow2fs.volume.before_publish"), pytest.raises(faults.InjectedCrash):
        await driver.create_volume("vol-1", 16 * MIB)
    with pytest.raises(NotFound):
        await driver.get_volume("vol-1")
    assert (await driver.create_volume("vol-1", 16 * MIB)).size_bytes == 16 * MIB


async def test_a_copy_in_crashed_before_publishing_is_finished_from_a_source_staged_anew(
    driver: Qcow2fsDriver, tmp_path: Path
) -> None:
    first, again = tmp_path / "staged-1.raw", tmp_path / "staged-2.raw"
    first.write_bytes(b"\x5a" * MIB)
    again.write_bytes(b"\x5a" * MIB)
    with faults.armed("qcow2fs.volume.before_publish"), pytest.raises(faults.InjectedCrash):
        await driver.copy_in("vol-1", first, source_format=VolumeFormat.RAW)
    volume = await driver.copy_in("vol-1", again, source_format=VolumeFormat.RAW)
    assert await read_all(volume.path, tmp_path) == b"\x5a" * MIB
    with pytest.raises(AlreadyExists):  # once published, another request for the id is still a conflict
        await driver.copy_in("vol-1", first, source_format=VolumeFormat.RAW)


async def test_template_as_backing_file_or_full_copy(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    template = tmp_path / "template.qcow2"
    await run("qemu-img", "create", "-q", "-f", "qcow2", str(template), str(4 * MIB))
    await guest_write(template, 0x7A, 0, MIB)
    backed = await driver.create_volume("vol-b", 8 * MIB, template=template)
    copied = await driver.create_volume("vol-c", 8 * MIB, template=template, template_mode=TemplateMode.COPY)
    expected = bytes([0x7A]) * MIB + bytes(7 * MIB)
    assert await read_all(backed.path, tmp_path) == expected
    assert await read_all(copied.path, tmp_path) == expected
    assert backed.allocated_bytes < copied.allocated_bytes
    with pytest.raises(InvalidArgument):
        await driver.create_volume("vol-d", MIB, template=template)
    await driver.delete_volume("vol-b")
    await driver.delete_volume("vol-b")
    assert template.exists()


async def test_clone_and_resize(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    source = await driver.create_volume("vol-1", 8 * MIB)
    await guest_write(source.path, 0x42, 0, MIB)
    clone = await driver.clone_volume("vol-2", "vol-1")
    assert await read_all(clone.path, tmp_path) == await read_all(source.path, tmp_path)
    grown = await driver.resize_volume("vol-2", 16 * MIB)
    assert grown.size_bytes == 16 * MIB
    assert (await driver.resize_volume("vol-2", 16 * MIB)).size_bytes == 16 * MIB
    with pytest.raises(InvalidArgument):
        await driver.resize_volume("vol-2", 8 * MIB)
    with pytest.raises(NotFound):
        await driver.clone_volume("vol-3", "missing")


async def test_copy_in_and_out_round_trip_with_progress(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    source = tmp_path / "disk.raw"
    data = os.urandom(3 * MIB) + bytes(5 * MIB)
    source.write_bytes(data)
    seen: list[tuple[int, int]] = []
    volume = await driver.copy_in(
        "vol-1", source, source_format=VolumeFormat.RAW, progress=lambda d, t: seen.append((d, t))
    )
    assert volume.size_bytes == len(data)
    assert seen[-1] == (len(data), len(data))
    assert await driver.copy_in("vol-1", source, source_format=VolumeFormat.RAW) == volume
    target = tmp_path / "out.raw"
    await driver.copy_out("vol-1", target, target_format=VolumeFormat.RAW)
    await driver.copy_out("vol-1", target, target_format=VolumeFormat.RAW)
    assert target.read_bytes() == data
    with pytest.raises(NotFound):
        await driver.copy_in("vol-2", tmp_path / "missing.raw")
    with pytest.raises(NotFound):
        await driver.copy_in("vol-3", tmp_path / "missing.raw", source_format=VolumeFormat.RAW)


async def test_a_create_that_fails_for_good_leaves_nothing_and_frees_the_id(
    driver: Qcow2fsDriver, tmp_path: Path
) -> None:
    source = tmp_path / "disk.raw"
    source.write_bytes(os.urandom(MIB))
    with pytest.raises(NotFound):
        await driver.copy_in("vol-1", tmp_path / "typo.raw", source_format=VolumeFormat.RAW)
    assert [volume.volume_id for volume in await driver.list_volumes()] == []
    # The corrected request for the same id is a new volume, not a conflict with the failed one.
    volume = await driver.copy_in("vol-1", source, source_format=VolumeFormat.RAW)
    assert volume.size_bytes == MIB


@pytest.mark.parametrize("source_format", [VolumeFormat.QCOW2, None])
async def test_copy_in_of_a_qcow2_named_or_probed(
    driver: Qcow2fsDriver, tmp_path: Path, source_format: VolumeFormat | None
) -> None:
    source = tmp_path / "disk.qcow2"
    await run("qemu-img", "create", "-q", "-f", "qcow2", str(source), str(6 * MIB))
    await guest_write(source, 0x5A, MIB, MIB)
    seen: list[tuple[int, int]] = []
    volume = await driver.copy_in(
        "vol-1", source, source_format=source_format, progress=lambda d, t: seen.append((d, t))
    )
    assert volume.size_bytes == 6 * MIB
    assert seen[-1] == (6 * MIB, 6 * MIB)
    assert await read_all(volume.path, tmp_path) == bytes(MIB) + b"\x5a" * MIB + bytes(4 * MIB)


async def test_pool_states_and_stats(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    await driver.create_volume("vol-1", 8 * MIB)
    stats = await driver.stats()
    assert stats.volumes == 1
    assert stats.allocated_bytes == 8 * MIB
    assert 0 < stats.used_bytes <= stats.capacity_bytes
    assert (await driver.disable()).state is PoolState.DISABLED
    with pytest.raises(FailedPrecondition):
        await driver.create_volume("vol-2", 8 * MIB)
    await driver.resize_volume("vol-1", 16 * MIB)
    assert (await driver.enable()).state is PoolState.ENABLED
    with pytest.raises(AlreadyExists):
        await driver.add_pool("another-pool")
    with pytest.raises(FailedPrecondition):
        await driver.remove_pool("pool-1")
    await driver.delete_volume("vol-1")
    await driver.remove_pool("pool-1")
    await driver.remove_pool("pool-1")
    with pytest.raises(NotFound):
        await driver.get_pool()


async def test_a_shared_pool_must_be_a_mount(tmp_path: Path) -> None:
    shared = Qcow2fsDriver(Qcow2fsConfig(path=tmp_path, shared=True))
    with pytest.raises(FailedPrecondition, match="mount"):
        await shared.add_pool("pool-1")


def _deleted_files_held(under: Path) -> list[str]:
    """Files under `under` that are unlinked but still held open by this process (their space not yet given back)."""
    held = []
    for entry in os.scandir("/proc/self/fd"):
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue  # closed while we looked
        if target.startswith(str(under)) and target.endswith(" (deleted)"):
            held.append(target)
    return held


async def test_a_deleted_volume_is_gone_at_once_and_its_space_is_given_back_after(
    driver: Qcow2fsDriver, tmp_path: Path
) -> None:
    """A delete removes the volume's names and answers; the blocks of its images are freed behind it (a discard per
    extent on a filesystem mounted with online discard), and `close` waits until they are."""
    volume = await driver.create_volume("vol-1", 16 * MIB)
    await guest_write(volume.path, 0x5A, 0, 8 * MIB)
    await driver.delete_volume("vol-1")
    assert not (tmp_path / "pool" / "volumes" / "vol-1").exists()
    with pytest.raises(NotFound):
        await driver.get_volume("vol-1")
    await driver.close()
    assert _deleted_files_held(tmp_path / "pool") == []
    assert (await driver.create_volume("vol-1", 16 * MIB)).allocated_bytes < MIB  # the id is free again
