"""Backup, incremental, restore, delete and crash safety of the chunked format, on the in-memory blob store."""

import asyncio
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plugins.chunked.codec import Compression, chunk_key
from plugins.chunked.errors import ChunkCorrupted
from plugins.chunked.manifest import manifest_key, summary_key
from plugins.chunked.markers import BACKUP_MARKERS, SWEEP_MARKERS
from plugins.chunked.memory import MemoryBlobStore
from plugins.chunked.repository import ChunkedRepository
from plugins.chunked.settings import ChunkedSettings
from schemas.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Transient
from tests.helpers import assert_eventually

pytestmark = pytest.mark.unit

CHUNK = 32768
CHUNKS = 48


def _volume(path: Path, seed: int = 1) -> Path:
    """A volume of random chunks with two all-zero chunks (holes) and a short last chunk."""
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(CHUNKS * CHUNK + 1000))
    data[3 * CHUNK : 5 * CHUNK] = bytes(2 * CHUNK)
    path.write_bytes(data)
    return path


def _repository(store: MemoryBlobStore) -> ChunkedRepository:
    # No compression: random data would be stored raw anyway, and byte counts stay exact.
    return ChunkedRepository(store, ChunkedSettings(chunk_size=CHUNK, compression=Compression.NONE))


def _overwrite(path: Path, offset: int, length: int) -> None:
    with path.open("r+b") as file:
        file.seek(offset)
        file.write(os.urandom(length))


async def test_a_full_backup_restores_byte_for_byte_with_holes_left_sparse(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    volume = _volume(tmp_path / "vol.raw")
    progress: list[tuple[int, int]] = []
    result = await _repository(store).backup(
        backup_id="b1", volume_id="vol-1", source=volume, progress=lambda done, total: progress.append((done, total))
    )
    assert result.holes == 2
    assert result.chunks_written == CHUNKS + 1 - 2
    assert result.manifest.chunks[3] is None
    assert progress[-1] == (volume.stat().st_size, volume.stat().st_size)

    target = tmp_path / "restored.raw"
    restored = await _repository(store).restore("b1", target)
    assert target.read_bytes() == volume.read_bytes()
    assert restored.holes == 2
    assert target.stat().st_blocks * 512 < target.stat().st_size  # the holes are holes


async def test_an_incremental_backup_writes_only_the_changed_chunks(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    repository = _repository(store)
    volume = _volume(tmp_path / "vol.raw")
    await repository.backup(backup_id="full", volume_id="vol-1", source=volume)

    _overwrite(volume, 10 * CHUNK + 100, 200)  # inside chunk 10
    _overwrite(volume, 20 * CHUNK - 50, 100)  # across chunks 19 and 20
    chunks_before, manifests_before = store.bytes_put("chunks/"), store.bytes_put("backups/")
    result = await repository.backup(backup_id="incr", volume_id="vol-1", source=volume, parent_id="full")
    manifest_bytes = len(await store.get(manifest_key("incr"))) + len(await store.get(summary_key("incr")))

    assert result.chunks_written == 3
    assert store.bytes_put("chunks/") - chunks_before == 3 * (CHUNK + 1)  # the 1: codec tag
    assert store.bytes_put("backups/") - manifests_before == manifest_bytes
    assert result.bytes_written == 3 * (CHUNK + 1) + manifest_bytes
    target = tmp_path / "restored.raw"
    await repository.restore("incr", target)
    assert target.read_bytes() == volume.read_bytes()


async def test_the_same_backup_again_is_returned_and_a_conflicting_one_refused(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    repository = _repository(store)
    volume = _volume(tmp_path / "vol.raw")
    first = await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    puts = len(store.put_log)
    again = await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    assert again.already_existed
    assert again.manifest == first.manifest
    assert len(store.put_log) == puts
    with pytest.raises(AlreadyExists):
        await repository.backup(backup_id="b1", volume_id="vol-2", source=volume)


async def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    repository = _repository(store)
    volume = _volume(tmp_path / "vol.raw")
    with pytest.raises(InvalidArgument) as bad_id:
        await repository.backup(backup_id="../escape", volume_id="vol-1", source=volume)
    assert bad_id.value.field == "backup_id"
    with pytest.raises(NotFound) as missing_source:
        await repository.backup(backup_id="b1", volume_id="vol-1", source=tmp_path / "absent")
    assert missing_source.value.field == "source"
    with pytest.raises(NotFound) as missing_parent:
        await repository.backup(backup_id="b1", volume_id="vol-1", source=volume, parent_id="nope")
    assert missing_parent.value.field == "parent_id"
    await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    with pytest.raises(InvalidArgument, match="is of volume vol-1"):
        await repository.backup(backup_id="b2", volume_id="vol-2", source=volume, parent_id="b1")
    assert [manifest.backup_id for manifest in await repository.backups()] == ["b1"]
    assert not [key for key in store.objects if key.startswith(BACKUP_MARKERS)]


async def test_a_crash_before_the_manifest_leaves_no_backup_and_a_retry_finishes_it(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    repository = _repository(store)
    volume = _volume(tmp_path / "vol.raw")

    async def crash() -> None:
        raise Transient("simulated crash between the chunks and the manifest")

    with pytest.raises(Transient):
        await repository.backup(backup_id="b1", volume_id="vol-1", source=volume, before_manifest=crash)
    assert await repository.backups() == []
    with pytest.raises(NotFound):
        await repository.restore("b1", tmp_path / "nothing.raw")

    puts = len(store.put_log)
    retried = await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    assert retried.chunks_written == 0  # every chunk was already there
    written = [key for key, _ in store.put_log[puts:]]
    assert written[0].startswith(f"{BACKUP_MARKERS}b1.")
    assert written[1:] == [summary_key("b1"), manifest_key("b1")]
    target = tmp_path / "restored.raw"
    await repository.restore("b1", target)
    assert target.read_bytes() == volume.read_bytes()


async def test_a_corrupted_chunk_fails_the_restore_and_leaves_no_file(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    repository = _repository(store)
    volume = _volume(tmp_path / "vol.raw")
    result = await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    victim = chunk_key(result.manifest.chunks[7] or "")
    stored = bytearray(await store.get(victim))
    stored[500] ^= 0xFF
    await store.put(victim, bytes(stored))

    target = tmp_path / "restored.raw"
    with pytest.raises(ChunkCorrupted, match="backup b1"):
        await repository.restore("b1", target)
    assert not target.exists()

    await store.delete(victim)
    with pytest.raises(FailedPrecondition, match="missing"):
        await repository.restore("b1", target)


async def test_deleting_a_backup_frees_only_the_chunks_no_other_backup_uses(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    repository = _repository(store)
    volume = _volume(tmp_path / "vol.raw")
    full = await repository.backup(backup_id="full", volume_id="vol-1", source=volume)
    _overwrite(volume, 2 * CHUNK, 10)
    incremental = await repository.backup(backup_id="incr", volume_id="vol-1", source=volume, parent_id="full")
    only_in_full = full.manifest.digests() - incremental.manifest.digests()
    assert len(only_in_full) == 1

    existed, swept = await repository.delete("full")
    assert existed
    assert swept.freed_chunks == 1
    assert not swept.deferred
    assert not await store.exists(chunk_key(only_in_full.pop()))
    target = tmp_path / "restored.raw"
    await repository.restore("incr", target)  # the child does not need its deleted parent
    assert target.read_bytes() == volume.read_bytes()

    existed_again, _ = await repository.delete("full")
    assert not existed_again
    await repository.delete("incr")
    assert not [key for key in store.objects if key.startswith("chunks/")]


async def test_a_sweep_frees_nothing_while_a_backup_is_in_flight(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    repository = _repository(store)
    volume = _volume(tmp_path / "vol.raw")
    await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    await store.put(f"{BACKUP_MARKERS}b2", b"{}")  # another host is backing up and may reuse b1's chunks

    _, swept = await repository.delete("b1")
    assert swept.deferred
    assert swept.freed_chunks == 0
    assert [key for key in store.objects if key.startswith("chunks/")]

    await store.delete(f"{BACKUP_MARKERS}b2")
    swept = await repository.sweep()
    assert swept.freed_chunks == CHUNKS + 1 - 2


async def test_identical_chunks_are_stored_once_and_listed_backups_filter_by_volume(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    repository = _repository(store)
    block = os.urandom(CHUNK)
    volume = tmp_path / "same.raw"
    volume.write_bytes(block * 6)
    result = await repository.backup(backup_id="a", volume_id="vol-a", source=volume)
    assert result.chunks_written == 1
    other = await repository.backup(backup_id="b", volume_id="vol-b", source=volume)
    assert other.chunks_written == 0  # found by the exists check, not the parent
    assert [manifest.backup_id for manifest in await repository.backups("vol-b")] == ["b"]


async def test_a_backup_waits_for_a_running_sweep_and_gives_up_cleanly(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    impatient = ChunkedRepository(store, ChunkedSettings(chunk_size=CHUNK, sweep_wait=timedelta(milliseconds=100)))
    volume = _volume(tmp_path / "vol.raw")
    await store.put(f"{SWEEP_MARKERS}another-host", b"{}")
    with pytest.raises(Aborted, match="sweep"):
        await impatient.backup(backup_id="b1", volume_id="vol-1", source=volume)
    assert not [key for key in store.objects if key.startswith(("chunks/", BACKUP_MARKERS))]

    await store.delete(f"{SWEEP_MARKERS}another-host")
    result = await impatient.backup(backup_id="b1", volume_id="vol-1", source=volume)
    assert not result.already_existed


async def test_markers_of_crashed_processes_stop_counting_after_their_lease(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    repository = ChunkedRepository(store, ChunkedSettings(chunk_size=CHUNK, backup_lease=timedelta(minutes=10)))
    volume = _volume(tmp_path / "vol.raw")
    await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    await store.put(f"{BACKUP_MARKERS}crashed", b"{}")
    store.objects[f"{BACKUP_MARKERS}crashed"] = (b"{}", datetime.now(UTC) - timedelta(hours=1))
    _, swept = await repository.delete("b1")
    assert not swept.deferred
    assert swept.freed_chunks == CHUNKS + 1 - 2


async def test_a_parent_swept_while_a_backup_waited_is_not_trusted(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    repository = _repository(store)
    volume = _volume(tmp_path / "vol.raw")
    await repository.backup(backup_id="parent", volume_id="vol-1", source=volume)
    await store.put(f"{SWEEP_MARKERS}running", b"{}")  # a sweep is under way elsewhere
    waiting = asyncio.create_task(
        repository.backup(backup_id="child", volume_id="vol-1", source=volume, parent_id="parent")
    )
    await assert_eventually(
        lambda: any(key.startswith(f"{BACKUP_MARKERS}child.") for key in store.objects), what="the child's marker"
    )
    # The running sweep deletes the parent and frees its chunks, then ends.
    for key in [key for key in store.objects if key.startswith("chunks/")] + [manifest_key("parent")]:
        await store.delete(key)
    await store.delete(f"{SWEEP_MARKERS}running")
    with pytest.raises(NotFound) as error:
        await waiting
    assert error.value.field == "parent_id"


async def test_listing_reads_summaries_and_a_sweep_removes_those_of_crashed_backups(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    repository = _repository(store)
    volume = _volume(tmp_path / "vol.raw")
    await repository.backup(backup_id="b1", volume_id="vol-1", source=volume, labels={"kind": "test"})
    await store.put(summary_key("crashed"), await store.get(summary_key("b1")))  # a summary without a manifest

    gets: list[str] = []
    original_get = store.get

    async def recording_get(key: str) -> bytes:
        gets.append(key)
        return await original_get(key)

    store.get = recording_get  # type: ignore[method-assign]
    listed = await repository.backups()
    assert [(summary.backup_id, summary.labels) for summary in listed] == [("b1", {"kind": "test"})]
    assert gets == [summary_key("b1")]  # not the manifest with its chunk list

    await repository.sweep()
    assert not await store.exists(summary_key("crashed"))
    assert await store.exists(summary_key("b1"))
    await repository.delete("b1")
    assert [key for key in store.objects if key.startswith("backups/")] == []


class _FailingAfter(MemoryBlobStore):
    """Loses its connection after `puts_left` puts (a crash midway through the chunk uploads)."""

    def __init__(self, puts_left: int) -> None:
        super().__init__()
        self.puts_left = puts_left

    async def put(self, key: str, data: bytes) -> None:
        if self.puts_left == 0:
            raise Transient("connection lost")
        self.puts_left -= 1
        await super().put(key, data)


async def test_a_backup_cut_off_midway_is_invisible_and_its_retry_uploads_only_the_rest(tmp_path: Path) -> None:
    store = _FailingAfter(puts_left=10)
    repository = _repository(store)
    volume = _volume(tmp_path / "vol.raw")
    with pytest.raises(Transient):
        await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    assert await repository.backups() == []
    uploaded_before = {key for key in store.objects if key.startswith("chunks/")}
    assert uploaded_before

    store.puts_left = 10_000
    result = await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    assert result.chunks_written == CHUNKS + 1 - 2 - len(uploaded_before)
    target = tmp_path / "restored.raw"
    await repository.restore("b1", target)
    assert target.read_bytes() == volume.read_bytes()


async def test_a_source_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    with pytest.raises(InvalidArgument, match="not a file") as error:
        await _repository(store).backup(backup_id="b1", volume_id="vol-1", source=tmp_path)
    assert error.value.field == "source"
    assert [key for key in store.objects if not key.startswith(BACKUP_MARKERS)] == []
