"""qcow2fs adopting staged files on real qemu-img: a standalone qcow2 staged under the pool's staging directory
becomes a volume by a rename (no second copy); anything else is refused and left where it was."""

from pathlib import Path

import pytest

from plugins.qcow2fs import Qcow2fsDriver
from plugins.sdk import faults
from plugins.sdk.errors import AlreadyExists, InvalidArgument, NotFound
from plugins.sdk.protocols import FileAdopter
from plugins.sdk.types import VolumeFormat
from tests.integration.plugins_qcow2fs_support import MIB, driver, guest_write, read_all, run

pytestmark = pytest.mark.integration
__all__ = ["driver"]


async def _staged(driver: Qcow2fsDriver, name: str, *, backing: Path | None = None) -> Path:
    directory = await driver.staging_directory() / "copy-test"
    directory.mkdir(exist_ok=True)
    staged = directory / name
    args = ["-b", str(backing), "-F", "qcow2"] if backing is not None else []
    await run("qemu-img", "create", "-q", "-f", "qcow2", *args, str(staged), str(4 * MIB))
    await guest_write(staged, 0x3C, MIB, MIB)
    return staged


async def test_a_staged_qcow2_becomes_a_volume_by_a_rename(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    assert isinstance(driver, FileAdopter)
    assert driver.adopts(VolumeFormat.QCOW2)
    assert not driver.adopts(VolumeFormat.RAW)
    staged = await _staged(driver, "base.qcow2")
    inode = staged.stat().st_ino
    volume = await driver.adopt("vol-1", staged, source_format=VolumeFormat.QCOW2)
    assert not staged.exists()
    assert Path(volume.path).stat().st_ino == inode  # noqa: ASYNC240  # the same file, not a copy
    assert volume.size_bytes == 4 * MIB
    assert await read_all(volume.path, tmp_path) == bytes(MIB) + bytes([0x3C]) * MIB + bytes(2 * MIB)
    assert await driver.adopt("vol-1", staged, source_format=VolumeFormat.QCOW2) == volume  # the same request
    with pytest.raises(AlreadyExists):
        await driver.adopt("vol-1", await _staged(driver, "other.qcow2"), source_format=VolumeFormat.QCOW2)


async def test_a_crash_before_publishing_is_finished_from_a_file_staged_anew(driver: Qcow2fsDriver) -> None:
    first = await _staged(driver, "first.qcow2")
    with faults.armed("qcow2fs.volume.before_publish"), pytest.raises(faults.InjectedCrash):
        await driver.adopt("vol-1", first, source_format=VolumeFormat.QCOW2)
    with pytest.raises(NotFound):
        await driver.get_volume("vol-1")
    again = await _staged(driver, "again.qcow2")
    assert (await driver.adopt("vol-1", again, source_format=VolumeFormat.QCOW2)).size_bytes == 4 * MIB


async def test_what_cannot_be_adopted_is_refused_and_left_alone(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    base = await _staged(driver, "base.qcow2")
    overlay = await _staged(driver, "overlay.qcow2", backing=base)
    with pytest.raises(InvalidArgument, match="depends on another file"):
        await driver.adopt("vol-1", overlay, source_format=VolumeFormat.QCOW2)
    assert overlay.exists()
    raw = base.with_name("disk.raw")
    raw.write_bytes(bytes(MIB))
    with pytest.raises(InvalidArgument, match="qcow2 files only"):
        await driver.adopt("vol-1", raw, source_format=VolumeFormat.RAW)
    with pytest.raises(InvalidArgument, match="is raw, not qcow2"):
        await driver.adopt("vol-1", raw, source_format=VolumeFormat.QCOW2)
    outside = tmp_path / "outside.qcow2"
    await run("qemu-img", "create", "-q", "-f", "qcow2", str(outside), str(MIB))
    with pytest.raises(InvalidArgument, match="not a file staged under"):
        await driver.adopt("vol-1", outside, source_format=VolumeFormat.QCOW2)
    assert raw.exists()
    assert outside.exists()
    with pytest.raises(NotFound):
        await driver.get_volume("vol-1")  # nothing of a refused volume is kept
