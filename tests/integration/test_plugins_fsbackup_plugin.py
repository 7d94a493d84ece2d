"""The fsbackup plugin as the orchestrator uses it: loaded from its entry point, configured, driven through the
SDK's BackupTarget and ImageStore protocols. The same tests run against the s3 plugin (test_plugins_s3_plugin)."""

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugins.chunked.driver import ChunkedDriver
from plugins.registry import load_plugins, validate_config
from plugins.sdk import faults
from plugins.sdk.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from plugins.sdk.protocols import BackupTarget, ImageStore
from plugins.sdk.types import ImageKind

pytestmark = pytest.mark.integration

CHUNK = 32 * 1024


def open_plugin(name: str, config: dict[str, object]) -> ChunkedDriver:
    """Open a driver the way the agent does: through the registry and the plugin's config model."""
    loaded = load_plugins().get(name)
    driver = loaded.open(validate_config(loaded, config))
    assert isinstance(driver, BackupTarget)
    assert isinstance(driver, ImageStore)
    assert isinstance(driver, ChunkedDriver)
    return driver


def write_volume(path: Path, chunks: int = 40) -> Path:
    with path.open("wb") as volume:
        volume.write(os.urandom(chunks * CHUNK))
        volume.truncate((chunks + 8) * CHUNK)  # a hole at the end
    return path


def overwrite(path: Path, offset: int, length: int) -> None:
    with path.open("r+b") as volume:
        volume.seek(offset)
        volume.write(os.urandom(length))


def stored_chunks(driver: ChunkedDriver) -> AsyncIterator[str]:
    return (info.key async for info in driver.store.list("chunks/"))


class ChunkedPluginContract:
    """What a chunked backup plugin must do; a subclass provides the `driver` fixture (32 KiB chunks)."""

    async def test_incremental_backup_writes_only_changed_chunks_and_restores(
        self, driver: ChunkedDriver, tmp_path: Path
    ) -> None:
        volume = write_volume(tmp_path / "vol.raw")
        full = await driver.backup("full", "vol-1", volume)
        assert full.parent_id is None
        overwrite(volume, 5 * CHUNK + 10, 100)
        overwrite(volume, 30 * CHUNK, 2 * CHUNK)
        incremental = await driver.backup("incr", "vol-1", volume, parent_id="full")
        assert incremental.parent_id == "full"
        assert 3 * CHUNK <= incremental.written_bytes <= 3 * (CHUNK + 1)  # three chunks changed, nothing else

        progress: list[tuple[int, int]] = []
        target = tmp_path / "restored.raw"
        await driver.restore("incr", target, progress=lambda done, total: progress.append((done, total)))
        assert target.read_bytes() == volume.read_bytes()
        assert progress[-1] == (volume.stat().st_size, volume.stat().st_size)
        assert [ref.backup_id for ref in await driver.list_backups("vol-1")] == ["full", "incr"]

    async def test_backup_is_idempotent_and_a_reused_id_conflicts(self, driver: ChunkedDriver, tmp_path: Path) -> None:
        volume = write_volume(tmp_path / "vol.raw")
        first = await driver.backup("b1", "vol-1", volume)
        assert await driver.backup("b1", "vol-1", volume) == first
        with pytest.raises(AlreadyExists):
            await driver.backup("b1", "vol-2", volume)

    async def test_a_crash_before_the_manifest_leaves_nothing_visible_and_a_retry_finishes(
        self, driver: ChunkedDriver, tmp_path: Path
    ) -> None:
        volume = write_volume(tmp_path / "vol.raw")
        point = f"{driver.plugin_name}.backup.before_manifest"
        with faults.armed(point), pytest.raises(faults.InjectedCrash):
            await driver.backup("b1", "vol-1", volume)
        assert await driver.list_backups() == []
        with pytest.raises(NotFound):
            await driver.restore("b1", tmp_path / "none.raw")
        ref = await driver.backup("b1", "vol-1", volume)
        assert ref.written_bytes == 0  # the crashed attempt had stored every chunk
        target = tmp_path / "restored.raw"
        await driver.restore("b1", target)
        assert target.read_bytes() == volume.read_bytes()

    async def test_delete_frees_only_unshared_chunks(self, driver: ChunkedDriver, tmp_path: Path) -> None:
        volume = write_volume(tmp_path / "vol.raw")
        await driver.backup("full", "vol-1", volume)
        before = {key async for key in stored_chunks(driver)}
        overwrite(volume, 0, 10)
        await driver.backup("incr", "vol-1", volume, parent_id="full")
        await driver.delete_backup("full")
        await driver.delete_backup("full")
        after = {key async for key in stored_chunks(driver)}
        assert len(before - after) == 1  # only the one chunk the child replaced
        target = tmp_path / "restored.raw"
        await driver.restore("incr", target)
        assert target.read_bytes() == volume.read_bytes()
        await driver.delete_backup("incr")
        assert {key async for key in stored_chunks(driver)} == set()

    async def test_a_corrupted_chunk_fails_the_restore(self, driver: ChunkedDriver, tmp_path: Path) -> None:
        volume = write_volume(tmp_path / "vol.raw", chunks=4)
        await driver.backup("b1", "vol-1", volume)
        victim, *_ = [key async for key in stored_chunks(driver)]
        stored = bytearray(await driver.store.get(victim))
        stored[-1] ^= 0x01
        await driver.store.put(victim, bytes(stored))
        with pytest.raises(FailedPrecondition, match="corrupted"):
            await driver.restore("b1", tmp_path / "restored.raw")
        assert not (tmp_path / "restored.raw").exists()

    async def test_images_round_trip_with_their_checksum(self, driver: ChunkedDriver, tmp_path: Path) -> None:
        content = os.urandom(300_000)
        source = tmp_path / "tmpl.qcow2"
        source.write_bytes(content)
        with pytest.raises(InvalidArgument):
            await driver.put_image("tmpl-1", ImageKind.TEMPLATE, source, checksum="md5:" + "0" * 32)
        assert await driver.list_images() == []
        ref = await driver.put_image("tmpl-1", ImageKind.TEMPLATE, source)
        assert ref.checksum == hashlib.sha256(content).hexdigest()
        assert await driver.put_image("tmpl-1", ImageKind.TEMPLATE, source) == ref
        target = tmp_path / "copy.qcow2"
        assert await driver.get_image("tmpl-1", target) == ref
        assert target.read_bytes() == content
        await driver.delete_image("tmpl-1")
        await driver.delete_image("tmpl-1")
        with pytest.raises(NotFound):
            await driver.get_image("tmpl-1", tmp_path / "gone")


class TestFsBackupPlugin(ChunkedPluginContract):
    @pytest.fixture
    async def driver(self, tmp_path: Path) -> AsyncIterator[ChunkedDriver]:
        (tmp_path / "store").mkdir()
        driver = open_plugin("fsbackup", {"path": str(tmp_path / "store"), "chunk_size_kib": CHUNK // 1024})
        yield driver
        await driver.close()


async def test_an_unmounted_share_is_refused_not_created(tmp_path: Path) -> None:
    driver = open_plugin("fsbackup", {"path": str(tmp_path / "not-mounted")})
    with pytest.raises(FailedPrecondition, match="is the share mounted") as error:
        await driver.list_backups()
    assert error.value.field == "path"
    assert not (tmp_path / "not-mounted").exists()


def test_a_relative_path_or_a_bad_chunk_size_names_the_plugin_and_the_field() -> None:
    loaded = load_plugins().get("fsbackup")
    with pytest.raises(InvalidArgument, match="plugin 'fsbackup'") as relative:
        validate_config(loaded, {"path": "relative/dir"})
    assert relative.value.field == "path"
    with pytest.raises(InvalidArgument) as odd:
        validate_config(loaded, {"path": "/srv/backup", "chunk_size_kib": 5})
    assert odd.value.field == "chunk_size_kib"
