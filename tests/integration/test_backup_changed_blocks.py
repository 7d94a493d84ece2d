"""Changed-block backups: qcow2fs block maps (real qemu-img chains) read by the fsbackup plugin.

An incremental of snapshot N against the backup of snapshot P reads only the extents above P's layer; when P's
layer is gone it reads everything, compares hashes, and says so. Restored data is checked against the manifest.
"""

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path

import pytest

from plugins.chunked.driver import ChunkedDriver
from plugins.chunked.reading import load_manifest
from plugins.chunked.transit import TRANSIT_PREFIX, transit_store
from plugins.chunked.writer import write_manifest
from plugins.fsbackup import FsBackupConfig
from plugins.fsbackup.driver import open_driver
from plugins.qcow2fs import Qcow2fsDriver
from plugins.sdk.blocks import BlockMap, Extent
from plugins.sdk.errors import FailedPrecondition, NotFound
from plugins.sdk.protocols import (
    BlockBackupTarget,
    BlockImageStore,
    BlockMapProvider,
    ContentWriter,
    PlacedRestorer,
)
from plugins.sdk.types import ImageKind, SnapshotKind, VolumeFormat
from tests.integration.plugins_qcow2fs_support import MIB, driver, guest_write, read_all, run

pytestmark = pytest.mark.integration
__all__ = ["driver"]

SIZE = 16 * MIB
CHUNK = 32 * 1024


@pytest.fixture
def store(tmp_path: Path) -> ChunkedDriver:
    root = tmp_path / "backups"
    root.mkdir()
    opened = open_driver(FsBackupConfig(path=str(root), chunk_size_kib=CHUNK // 1024))
    assert isinstance(opened, BlockBackupTarget)
    return opened


async def _write_random(image: str, offset: int, length: int, scratch: Path) -> None:
    """Write random bytes through the chain, like a guest."""
    source = scratch / "random.bin"
    source.write_bytes(os.urandom(length))
    await run("qemu-io", "-f", "qcow2", "-c", f"write -s {source} {offset} {length}", image)


async def _volume_backed_up(driver: Qcow2fsDriver, store: ChunkedDriver, scratch: Path) -> str:
    """A 16 MiB volume with 8 MiB of data, snapshot s1, and its full backup b1."""
    assert isinstance(driver, BlockMapProvider)
    volume = await driver.create_volume("vol-1", SIZE)
    await _write_random(volume.path, 0, 8 * MIB, scratch)
    await driver.create_snapshot("s1", "vol-1", SnapshotKind.DELTA)
    report = await store.backup_blocks("b1", "vol-1", await driver.block_map("vol-1", "s1"))
    assert report.bytes_read == 8 * MIB  # the data, not the 8 MiB that reads as zeros
    assert report.changed_blocks is False
    return volume.path


async def test_an_incremental_reads_only_the_extents_written_after_the_parent_snapshot(
    driver: Qcow2fsDriver, store: ChunkedDriver, tmp_path: Path
) -> None:
    path = await _volume_backed_up(driver, store, tmp_path)
    # 5% of the volume, scattered: 13 runs of 64 KiB (a qcow2 cluster each)
    for index in range(13):
        await _write_random(path, index * 19 * 64 * 1024, 64 * 1024, tmp_path)
    await driver.create_snapshot("s2", "vol-1", SnapshotKind.DELTA)
    await guest_write(path, 0x77, 0, MIB)  # after s2: not part of it
    blocks = await driver.block_map("vol-1", "s2", since_snapshot_id="s1")
    assert blocks.changes_known
    assert blocks.changed_bytes() == 13 * 64 * 1024

    report = await store.backup_blocks("b2", "vol-1", blocks, parent_id="b1")
    assert report.changed_blocks
    assert report.note is None
    assert report.bytes_read == 13 * 64 * 1024
    assert report.bytes_written <= 1.1 * 13 * 64 * 1024
    assert report.bytes_reused >= 7 * MIB

    restored = tmp_path / "b2.raw"
    await store.restore("b2", restored)
    expected = tmp_path / "s2.raw"
    layer = tmp_path / "pool" / "volumes" / "vol-1" / "snap-s2.qcow2"  # s2's chain flattened is its content
    await run("qemu-img", "convert", "-O", "raw", str(layer), str(expected))
    assert restored.read_bytes() == expected.read_bytes()

    await driver.create_volume("vol-2", SIZE)
    await driver.replace_content("vol-2", restored, source_format=VolumeFormat.RAW)
    await store.check_blocks("b2", await driver.block_map("vol-2"))
    with pytest.raises(FailedPrecondition, match="differs from backup b1 at chunk 0"):
        await store.check_blocks("b1", await driver.block_map("vol-2"))


async def test_without_the_parent_layer_it_reads_everything_and_says_so(
    driver: Qcow2fsDriver, store: ChunkedDriver, tmp_path: Path
) -> None:
    path = await _volume_backed_up(driver, store, tmp_path)
    await _write_random(path, 2 * MIB, 64 * 1024, tmp_path)
    await driver.create_snapshot("s2", "vol-1", SnapshotKind.FULL)
    blocks = await driver.block_map("vol-1", "s2", since_snapshot_id="s1")
    assert not blocks.changes_known
    report = await store.backup_blocks("b2", "vol-1", blocks, parent_id="b1")
    assert report.changed_blocks is False
    assert report.note is not None
    assert "compared chunk hashes" in report.note
    assert report.bytes_read == 8 * MIB
    assert report.bytes_written <= 1.1 * 64 * 1024 + 4096  # still only the changed chunks are stored
    restored = tmp_path / "b2.raw"
    await store.restore("b2", restored)
    assert restored.read_bytes() == await read_all(path, tmp_path)


async def test_verify_finds_a_corrupted_chunk(driver: Qcow2fsDriver, store: ChunkedDriver, tmp_path: Path) -> None:
    await _volume_backed_up(driver, store, tmp_path)
    clean = await store.verify_backup("b1")
    assert clean.bad == ()
    assert clean.chunks == 8 * MIB // CHUNK
    victim = next(path for path in (tmp_path / "backups" / "chunks").rglob("*") if path.is_file())
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0x01
    victim.write_bytes(bytes(data))
    report = await store.verify_backup("b1")
    assert len(report.bad) == 1
    assert "corrupted" in report.bad[0]
    with pytest.raises(FailedPrecondition, match="corrupted"):
        await store.restore("b1", tmp_path / "restored.raw")


async def test_the_check_of_restored_data_names_the_first_chunk_that_differs(
    store: ChunkedDriver, tmp_path: Path
) -> None:
    """The check reads its runs of chunks in parallel threads; whichever run finishes first, the lowest chunk that
    differs is the one reported."""
    data = tmp_path / "data.raw"
    data.write_bytes(os.urandom(4 * MIB))
    flat = BlockMap(size_bytes=4 * MIB, extents=(Extent(start=0, length=4 * MIB, file=str(data)),))
    await store.backup_blocks("b1", "vol-1", flat)
    await store.check_blocks("b1", flat)
    with data.open("r+b") as file:  # the last chunk of the first run (of 2 or more) and the first of the second
        for chunk in (63, 64):
            file.seek(chunk * CHUNK + 5)
            file.write(b"\xff\x00\xff")
    with pytest.raises(FailedPrecondition, match="differs from backup b1 at chunk 63 "):
        await store.check_blocks("b1", flat)


async def test_since_a_full_snapshot_it_reads_everything_and_says_why(driver: Qcow2fsDriver, tmp_path: Path) -> None:
    """A full snapshot is a copy beside the chain: the layers cannot tell what changed since it, and the reason
    says so (not that its layer was merged away)."""
    volume = await driver.create_volume("vol-1", SIZE)
    await _write_random(volume.path, 0, MIB, tmp_path)
    await driver.create_snapshot("s1", "vol-1", SnapshotKind.FULL)
    await _write_random(volume.path, 2 * MIB, MIB, tmp_path)
    await driver.create_snapshot("s2", "vol-1", SnapshotKind.DELTA)
    blocks = await driver.block_map("vol-1", "s2", since_snapshot_id="s1")
    assert not blocks.changes_known
    assert blocks.reason is not None
    assert "full copy beside the chain" in blocks.reason


async def test_a_restore_into_the_new_content_writes_the_volume_in_place(
    driver: Qcow2fsDriver, store: ChunkedDriver, tmp_path: Path
) -> None:
    """The agent's path when both plugins can (`ContentWriter`, `PlacedRestorer`): the backup's bytes go straight
    into the places of a fresh layer, which is switched in whole; snapshots keep theirs, and the volume's bytes then
    pass the check against the backup."""
    path = await _volume_backed_up(driver, store, tmp_path)
    before = await read_all(path, tmp_path)
    assert isinstance(driver, ContentWriter)
    assert isinstance(store, PlacedRestorer)
    active = (await driver.create_volume("vol-2", 4 * MIB)).path  # another size: the content takes the backup's
    await _write_random(active, 0, MIB, tmp_path)
    await driver.create_snapshot("s-2", "vol-2", SnapshotKind.DELTA)
    snapshot_bytes = await read_all(tmp_path / "pool" / "volumes" / "vol-2" / "snap-s-2.qcow2", tmp_path)

    await store.restore_into("b1", partial(driver.new_content, "vol-2"))

    assert await read_all(active, tmp_path) == before
    assert (await driver.get_volume("vol-2")).size_bytes == SIZE
    await store.check_blocks("b1", await driver.block_map("vol-2"))
    assert await read_all(tmp_path / "pool" / "volumes" / "vol-2" / "snap-s-2.qcow2", tmp_path) == snapshot_bytes
    blocks = await driver.block_map("vol-2")
    assert blocks.data_bytes() == 8 * MIB, "the backup's holes stay holes: what reads as zeros is not data"
    assert not list((tmp_path / "pool" / "volumes" / "vol-2").glob(".*tmp")), "no temporary layer is left"


async def test_a_restore_into_the_new_content_that_fails_leaves_the_volume_as_it_was(
    driver: Qcow2fsDriver, store: ChunkedDriver, tmp_path: Path
) -> None:
    """A corrupted chunk met halfway: the fresh layer is dropped and the volume keeps its bytes; a missing backup
    opens no content at all."""
    await _volume_backed_up(driver, store, tmp_path)
    volume = await driver.create_volume("vol-2", SIZE)
    await guest_write(volume.path, 0x5A, 0, 2 * MIB)
    before = await read_all(volume.path, tmp_path)
    chunks = sorted(path for path in (tmp_path / "backups" / "chunks").rglob("*") if path.is_file())
    victim = chunks[len(chunks) // 2]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0x01
    victim.write_bytes(bytes(data))

    with pytest.raises(FailedPrecondition, match="corrupted"):
        await store.restore_into("b1", partial(driver.new_content, "vol-2"))
    assert await read_all(volume.path, tmp_path) == before
    assert not list((tmp_path / "pool" / "volumes" / "vol-2").glob(".*tmp")), "the fresh layer is gone"

    opened: list[int] = []

    def content(size_bytes: int) -> AbstractAsyncContextManager[BlockMap]:
        opened.append(size_bytes)
        return driver.new_content("vol-2", size_bytes)

    with pytest.raises(NotFound):
        await store.restore_into("no-such-backup", content)
    assert opened == []


@asynccontextmanager
async def _new_volume(
    driver: Qcow2fsDriver, volume_id: str, opened: list[int], size_bytes: int
) -> AsyncIterator[BlockMap]:
    """A new volume made at the size asked for (noted in `opened`), as the agent makes it: its fresh places."""
    opened.append(size_bytes)
    await driver.create_volume(volume_id, size_bytes)
    async with driver.new_content(volume_id, size_bytes) as places:
        yield places


async def test_a_volume_goes_to_an_image_and_into_another_volume_without_staging_files(
    driver: Qcow2fsDriver, store: ChunkedDriver, tmp_path: Path
) -> None:
    """A staged migration's raw copy: the volume's bytes read where they lie into a raw image (its checksum that of
    the raw bytes, holes included), then written straight into a new volume's places; a wrong checksum or a missing
    image opens nothing."""
    path = await _volume_backed_up(driver, store, tmp_path)
    raw = await read_all(path, tmp_path)
    assert isinstance(store, BlockImageStore)
    stored = await store.put_image_blocks("staged", ImageKind.TEMPLATE, await driver.block_map("vol-1"))
    assert stored.checksum == hashlib.sha256(raw).hexdigest()
    assert stored.size_bytes == SIZE
    again = await store.put_image_blocks("staged", ImageKind.TEMPLATE, await driver.block_map("vol-1"))
    assert again.checksum == stored.checksum

    opened: list[int] = []
    new_volume = partial(_new_volume, driver, "vol-3", opened)

    with pytest.raises(FailedPrecondition) as refused:
        await store.get_image_into("staged", new_volume, checksum="sha256:" + "0" * 64)
    assert refused.value.field == "checksum"
    with pytest.raises(NotFound):
        await store.get_image_into("missing", new_volume)
    assert opened == []

    fetched = await store.get_image_into("staged", new_volume, checksum=f"sha256:{stored.checksum}")
    assert fetched.checksum == stored.checksum
    assert opened == [SIZE]
    assert await read_all((await driver.get_volume("vol-3")).path, tmp_path) == raw


async def test_a_transit_copy_is_named_by_its_chunk_list_and_a_changed_list_is_refused(
    driver: Qcow2fsDriver, store: ChunkedDriver, tmp_path: Path
) -> None:
    """A staged migration's copy stored without its SHA-256 (a second hash of every byte): named by the digest of
    its chunk list, which the copy in checks before it opens anything, so a manifest whose list was changed (two
    chunks swapped: every chunk still sound) is refused; the right name writes the volume's very bytes. The copy
    lives in its own corner of the store, apart from the images (none of its chunks is theirs; it is no image), and
    deleting it moves that corner aside at once and removes it behind (with what a crash left there)."""
    path = await _volume_backed_up(driver, store, tmp_path)
    raw = await read_all(path, tmp_path)
    assert isinstance(store, BlockImageStore)
    blocks = await driver.block_map("vol-1")
    stored = await store.put_image_blocks("transit", ImageKind.TEMPLATE, blocks, transit=True)
    assert stored.checksum is None
    assert stored.chunk_list_checksum is not None
    name = f"chunklist-sha256:{stored.chunk_list_checksum}"
    opened: list[int] = []
    new_volume = partial(_new_volume, driver, "vol-4", opened)

    assert [image.image_id for image in await store.list_images()] == []
    assert not [info async for info in store.images.chunks.store.list("")]  # nothing under images/
    blobs = transit_store(store.store, "transit")
    manifest = await load_manifest(blobs, "transit")
    first, second = manifest.chunks[0], manifest.chunks[1]
    assert None not in (first, second)
    assert first != second
    swapped = manifest.model_copy(update={"chunks": [second, first, *manifest.chunks[2:]]})
    await write_manifest(blobs, swapped)
    with pytest.raises(FailedPrecondition) as refused:
        await store.get_image_into("transit", new_volume, checksum=name)
    assert refused.value.field == "checksum"
    assert opened == []

    await write_manifest(blobs, manifest)
    fetched = await store.get_image_into("transit", new_volume, checksum=name)
    assert fetched.chunk_list_checksum == stored.chunk_list_checksum
    assert opened == [SIZE]
    assert await read_all((await driver.get_volume("vol-4")).path, tmp_path) == raw

    assert await store.list_transit_copies() == {"transit": True}
    corner = tmp_path / "backups" / TRANSIT_PREFIX
    left_by_a_crash = corner / ".deleting" / "older.0badf00d"
    left_by_a_crash.mkdir(parents=True)
    (left_by_a_crash / "chunk").write_bytes(b"x")
    await store.delete_image("transit")
    assert not (corner / "transit").exists()
    assert await store.list_transit_copies() == {}
    with pytest.raises(NotFound):
        await store.get_image_into("transit", new_volume, checksum=name)
    await store.delete_image("transit")  # twice is fine
    await store.close()  # waits for the files to go
    assert list((corner / ".deleting").iterdir()) == []
