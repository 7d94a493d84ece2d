"""Templates and ISOs in the chunked format: checksums checked before storing, kept apart from backups."""

import hashlib
import os
from pathlib import Path

import pytest

from plugins.chunked.images import ImageRepository, parse_checksum
from plugins.chunked.memory import MemoryBlobStore
from plugins.chunked.repository import ChunkedRepository
from schemas.errors import AlreadyExists, InvalidArgument, NotFound

pytestmark = pytest.mark.unit


def _image(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "template.qcow2"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sha256:" + "A" * 64, ("sha256", "a" * 64)),
        ("{SHA-256}" + "b" * 64, ("sha256", "b" * 64)),
        ("c" * 32, ("md5", "c" * 32)),
        ("{MD5}" + "d" * 32, ("md5", "d" * 32)),
    ],
)
def test_checksums_are_read_in_the_forms_operators_write(text: str, expected: tuple[str, str]) -> None:
    assert parse_checksum(text) == expected


@pytest.mark.parametrize("text", ["sha256:abc", "crc32:deadbeef", "z" * 64, ""])
def test_a_malformed_checksum_names_the_field(text: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        parse_checksum(text)
    assert error.value.field == "checksum"


async def test_an_image_round_trips_with_its_checksum(tmp_path: Path) -> None:
    content = os.urandom(200_000)
    images = ImageRepository(MemoryBlobStore())
    md5 = hashlib.md5(content).hexdigest()
    record = await images.put("tmpl-1", _image(tmp_path, content), kind="template", checksum=md5)
    assert record.checksum == f"sha256:{hashlib.sha256(content).hexdigest()}"
    assert record.size == len(content)
    target = tmp_path / "copy.qcow2"
    await images.get("tmpl-1", target)
    assert target.read_bytes() == content
    assert [image.image_id for image in await images.list()] == ["tmpl-1"]
    assert (await images.info("tmpl-1")).kind == "template"


async def test_a_wrong_checksum_stores_nothing(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    images = ImageRepository(store)
    with pytest.raises(InvalidArgument, match="not the registered") as error:
        await images.put("tmpl-1", _image(tmp_path, b"data"), checksum="sha256:" + "0" * 64)
    assert error.value.field == "checksum"
    assert store.objects == {}


async def test_putting_an_image_twice_is_idempotent_and_other_content_conflicts(tmp_path: Path) -> None:
    images = ImageRepository(MemoryBlobStore())
    first = await images.put("iso-1", _image(tmp_path, b"one" * 1000), kind="iso", disk_format="iso")
    assert await images.put("iso-1", _image(tmp_path, b"one" * 1000), kind="iso", disk_format="iso") == first
    with pytest.raises(AlreadyExists):
        await images.put("iso-1", _image(tmp_path, b"two" * 1000), kind="iso", disk_format="iso")
    with pytest.raises(AlreadyExists):
        await images.put("iso-1", _image(tmp_path, b"one" * 1000), kind="template", disk_format="qcow2")


async def test_images_and_backups_share_a_store_without_seeing_each_other(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    images, backups = ImageRepository(store), ChunkedRepository(store)
    source = _image(tmp_path, os.urandom(100_000))
    await images.put("same-id", source)
    await backups.backup(backup_id="same-id", volume_id="vol-1", source=source)
    assert [manifest.backup_id for manifest in await backups.backups()] == ["same-id"]
    assert await images.delete("same-id")
    assert not await images.delete("same-id")
    with pytest.raises(NotFound) as error:
        await images.get("same-id", tmp_path / "gone")
    assert error.value.field == "image_id"
    restored = tmp_path / "restored.raw"
    await backups.restore("same-id", restored)  # the image's delete freed none of the backup's chunks
    assert restored.read_bytes() == source.read_bytes()


async def test_an_image_without_a_registered_checksum_gets_its_sha256_in_the_pass_that_stores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = os.urandom(300_000) + bytes(100_000)  # zeros too: they are hashed even though no chunk holds them
    images = ImageRepository(MemoryBlobStore())
    source = _image(tmp_path, content)
    reads: list[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, length: int, offset: int) -> bytes:
        data = real_pread(fd, length, offset)
        reads.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", counting_pread)  # the test counts what the store reads
    record = await images.put("copy-1", source)
    monkeypatch.undo()
    assert record.checksum == f"sha256:{hashlib.sha256(content).hexdigest()}"
    assert sum(reads) == len(content)  # read once
    assert (await images.info("copy-1")).checksum == record.checksum
