"""The directory blob store on a real filesystem: the store contract, atomic writes, and errors translated."""

import os
from pathlib import Path

import pytest

from plugins.chunked.directory import DirectoryBlobStore
from plugins.chunked.ports import BlobStore
from plugins.chunked.repository import ChunkedRepository
from plugins.chunked.settings import ChunkedSettings
from schemas.errors import FailedPrecondition, InvalidArgument
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
