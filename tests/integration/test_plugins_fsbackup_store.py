"""The directory blob store on a real filesystem: the store contract, atomic writes, and errors translated."""

import os
import uuid
from pathlib import Path

import pytest

from plugins.chunked import directory as directory_module
from plugins.chunked.codec import Compression, chunk_key, encode_chunk_parts, stored_length
from plugins.chunked.directory import DirectoryBlobStore
from plugins.chunked.ports import BlobStore
from plugins.chunked.repository import ChunkedRepository
from plugins.chunked.settings import ChunkedSettings
from schemas.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.unit.test_chunked_store_contract import BlobStoreContract

pytestmark = pytest.mark.integration


class TestDirectoryBlobStore(BlobStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> BlobStore:
        return DirectoryBlobStore(tmp_path / "store")


async def test_an_interrupted_write_leaves_no_visible_object(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path)
    (tmp_path / "chunks" / "abc").mkdir(parents=True)
    (tmp_path / "chunks" / "abc" / "abcdef.1234abcd.partial").write_bytes(b"half")  # a crash mid-write
    assert [info async for info in store.list("chunks/")] == []
    assert not await store.exists("chunks/abc/abcdef")
    await store.put("chunks/abc/abcdef", b"whole")
    assert [info.key async for info in store.list("chunks/")] == ["chunks/abc/abcdef"]


async def test_keys_that_would_leave_the_directory_are_refused(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path / "store")
    for key in ("../outside", "/etc/passwd", "chunks//x", "chunks/x.partial"):
        with pytest.raises(InvalidArgument):
            await store.put(key, b"x")
    assert not (tmp_path / "outside").exists()


async def test_an_unusable_directory_is_a_failed_precondition(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"not a directory")
    with pytest.raises(FailedPrecondition, match="layout is broken"):
        await DirectoryBlobStore(tmp_path / "a-file").put("chunks/abc/abcd", b"x")
    if os.geteuid() != 0:  # root writes anywhere: only another user can see permissions refused
        (tmp_path / "ro").mkdir(mode=0o500)
        with pytest.raises(FailedPrecondition, match="not writable"):
            await DirectoryBlobStore(tmp_path / "ro").put("chunks/abc/abcd", b"x")


async def test_a_volume_backed_up_to_a_directory_restores_identically(tmp_path: Path) -> None:
    repository = ChunkedRepository(DirectoryBlobStore(tmp_path / "store"), ChunkedSettings())
    volume = tmp_path / "vol.raw"
    with volume.open("wb") as file:
        file.write(os.urandom(300_000))
        file.truncate(2 * 1024 * 1024)  # a sparse tail: holes
    result = await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    assert result.holes > 0
    target = tmp_path / "restored.raw"
    await repository.restore("b1", target)
    assert target.read_bytes() == volume.read_bytes()
    assert not list((tmp_path / "store").rglob("*.partial"))


async def test_a_backup_flushes_its_chunks_once_instead_of_one_fsync_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks go in by window, unsynced, then one flush of the filesystem before the manifest: the manifest, its
    summary and the backup's marker are the only files fsynced one by one."""
    fsyncs: list[int] = []
    flushes: list[Path] = []
    real_fsync, real_flush = os.fsync, directory_module._sync_filesystem

    def counted_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    def counted_flush(root: Path) -> None:
        flushes.append(root)
        real_flush(root)

    monkeypatch.setattr(os, "fsync", counted_fsync)
    monkeypatch.setattr(directory_module, "_sync_filesystem", counted_flush)
    store = DirectoryBlobStore(tmp_path / "store")
    repository = ChunkedRepository(store, ChunkedSettings(chunk_size=4096, window_bytes=64 * 1024))
    volume = tmp_path / "vol.raw"
    volume.write_bytes(os.urandom(1024 * 1024))  # 256 chunks
    result = await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    assert result.chunks_written == 256
    assert flushes == [tmp_path / "store"]
    assert len(fsyncs) <= 4  # marker (and its removal's neighbours), summary, manifest: never one per chunk
    target = tmp_path / "restored.raw"
    await repository.restore("b1", target)
    assert target.read_bytes() == volume.read_bytes()


async def test_an_empty_chunk_file_left_by_a_crash_is_written_again(tmp_path: Path) -> None:
    """A rename that reached the disk before its data (delayed allocation) leaves an empty file: the next backup
    that needs the chunk does not take it for stored."""
    store = DirectoryBlobStore(tmp_path / "store")
    key = "chunks/abc/abcdef"
    (tmp_path / "store" / "chunks" / "abc").mkdir(parents=True)
    (tmp_path / "store" / key).write_bytes(b"")  # what the crash left
    assert store.write_new_blocking(key, b"\x00data") is True
    assert store.write_new_blocking(key, b"\x00other") is False
    assert await store.get(key) == b"\x00data"


async def test_a_chunk_in_parts_is_stored_as_one_object(tmp_path: Path) -> None:
    """A raw chunk's stored form is its codec byte and its bytes as read (never joined into a copy): written one
    after the other, whatever the parts' types, they make one object."""
    store = DirectoryBlobStore(tmp_path / "store")
    data = bytearray(os.urandom(3 * 1024 * 1024 + 5))
    parts = encode_chunk_parts(memoryview(data)[1:], Compression.NONE)
    assert len(parts) == 2
    assert store.write_new_blocking("chunks/abc/in-parts", parts) is True
    assert await store.get("chunks/abc/in-parts") == b"\x00" + bytes(data[1:])
    assert stored_length(parts) == len(data)


def test_an_object_is_read_in_place_into_the_parts_given(tmp_path: Path) -> None:
    """The scatter read a restore uses: the object's bytes fill the parts in order; a spare part tells an object
    longer than expected; a missing one is `NotFound`."""
    store = DirectoryBlobStore(tmp_path / "store")
    (tmp_path / "store" / "chunks").mkdir(parents=True)
    data = os.urandom(70_000)
    (tmp_path / "store" / "chunks" / "one").write_bytes(data)
    tag, place, spare = bytearray(1), bytearray(len(data) - 1), bytearray(1)
    assert store.read_into_blocking("chunks/one", [memoryview(tag), memoryview(place), memoryview(spare)]) == len(data)
    assert bytes(tag + place) == data
    longer = bytearray(len(data) - 2)
    assert store.read_into_blocking("chunks/one", [memoryview(tag), memoryview(longer), memoryview(spare)]) == len(data)
    assert spare == data[-1:]
    with pytest.raises(NotFound):
        store.read_into_blocking("chunks/two", [memoryview(place)])
    with pytest.raises(InvalidArgument):
        store.read_into_blocking("../escape", [memoryview(place)])


@pytest.mark.parametrize("where", ["disk", "tmpfs"])
async def test_a_restore_of_any_size_writes_every_byte_direct_or_buffered(tmp_path: Path, where: str) -> None:
    """A restore writes its windows straight to the disk where the filesystem takes direct writes (page-aligned runs
    from page-aligned windows) and through the page cache elsewhere: an unaligned tail, a hole between runs, a
    filesystem without O_DIRECT (tmpfs)."""
    repository = ChunkedRepository(DirectoryBlobStore(tmp_path / "store"), ChunkedSettings(chunk_size=8192))
    data = os.urandom(40 * 1024) + bytes(16 * 1024) + os.urandom(20 * 1024 + 1000)
    volume = tmp_path / "vol.raw"
    volume.write_bytes(data)
    await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    directory = tmp_path if where == "disk" else Path("/dev/shm")
    target = directory / f"strata-restore-{uuid.uuid4().hex}.raw"
    try:
        await repository.restore("b1", target)
        assert target.read_bytes() == data
    finally:
        target.unlink(missing_ok=True)


async def test_a_missing_chunk_fails_a_restore_from_a_directory_naming_it(tmp_path: Path) -> None:
    repository = ChunkedRepository(DirectoryBlobStore(tmp_path / "store"), ChunkedSettings(chunk_size=4096))
    volume = tmp_path / "vol.raw"
    volume.write_bytes(os.urandom(64 * 1024))
    backup = await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    lost = backup.manifest.chunks[5]
    assert lost is not None
    (tmp_path / "store" / chunk_key(lost)).unlink()
    target = tmp_path / "restored.raw"
    with pytest.raises(FailedPrecondition, match=f"chunk 5 \\({lost}\\) is missing"):
        await repository.restore("b1", target)
    assert not target.exists()
