"""The agent's copies between a qcow2fs pool and an fsbackup store, on RabbitMQ and PostgreSQL: a volume made from
a store's object, written back to the store, checked, a wrong checksum refused, a deadline that leaves nothing."""

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from plugins.fsbackup import FsBackupConfig
from plugins.fsbackup.driver import open_driver
from plugins.sdk.errors import NotFound
from plugins.sdk.types import ImageKind
from schemas import Envelope, Message
from schemas.agent import (
    AttachPoolToHost,
    CopyFormat,
    CopyProgressed,
    CopyStage,
    CopyVolumeFromStore,
    CopyVolumeToStore,
    PoolAttachedToHost,
    StoreAccess,
    VolumeCopiedFromStore,
    VolumeCopiedToStore,
    VolumeCopyFromStoreFailed,
    VolumeCopyToStoreFailed,
)
from tests.helpers import assert_eventually
from tests.integration.storage_stack import Stack, fail_without_libvirt, pool_directory

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
HOST = "kvm1.lab"


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Stack]:
    fail_without_libvirt()
    opened = await Stack.open(database_url, amqp_url, namespace)
    await opened.start_agent(HOST, "c1")
    yield opened
    await opened.close()


async def attach_pool(stack: Stack, tmp_path: Path, root: Path | None = None) -> UUID:
    pool_id = uuid4()
    command = AttachPoolToHost(
        pool_id=pool_id, plugin="qcow2fs", config={"path": str(root or pool_directory(tmp_path))}, host=HOST
    )
    assert isinstance(await outcome(stack, await stack.send(command)), PoolAttachedToHost)
    return pool_id


def store_in(tmp_path: Path) -> StoreAccess:
    root = tmp_path / f"store-{uuid4().hex[:6]}"
    root.mkdir()
    return StoreAccess(store_id=uuid4(), plugin="fsbackup", config={"path": str(root)})


async def outcome(stack: Stack, cause: Envelope) -> Message:
    """The answer to a copy command (its progress reports aside)."""

    def answered() -> list[Envelope]:
        return [
            event
            for event in stack.events
            if event.causation_id == cause.message_id and not isinstance(event.payload, CopyProgressed)
        ]

    await assert_eventually(lambda: bool(answered()), timeout=30.0, what=f"the answer to {cause.type}")
    return answered()[0].payload


async def stored_bytes(store: StoreAccess, object_id: str, target: Path) -> bytes:
    driver = open_driver(FsBackupConfig(**store.config))
    try:
        await driver.get_image(object_id, target)
    finally:
        await driver.close()
    return target.read_bytes()  # noqa: ASYNC240  # a test's quick look


async def test_a_volume_goes_from_a_store_to_a_pool_and_back(stack: Stack, tmp_path: Path) -> None:
    pool_id = await attach_pool(stack, tmp_path)
    store = store_in(tmp_path)
    content = os.urandom(3 * MIB) + bytes(MIB)
    source = tmp_path / "image.raw"
    source.write_bytes(content)
    driver = open_driver(FsBackupConfig(**store.config))
    put = await driver.put_image("base-image", ImageKind.TEMPLATE, source)
    await driver.close()

    volume_id = uuid4()
    copy_in = await stack.send(
        CopyVolumeFromStore(
            pool_id=pool_id,
            volume_id=volume_id,
            store=store,
            object_id="base-image",
            format=CopyFormat.RAW,
            checksum=f"sha256:{put.checksum}",
            host=HOST,
        )
    )
    made = await outcome(stack, copy_in)
    assert isinstance(made, VolumeCopiedFromStore), made
    assert made.size_bytes == len(content)
    stages = {event.stage for event in stack.of_type(CopyProgressed, lambda e: e.volume_id == volume_id)}
    assert stages == {CopyStage.STORE, CopyStage.POOL}, "each half of the copy reports its progress"

    copy_out = await stack.send(
        CopyVolumeToStore(
            pool_id=pool_id, volume_id=volume_id, store=store, object_id="exported", format=CopyFormat.RAW, host=HOST
        )
    )
    exported = await outcome(stack, copy_out)
    assert isinstance(exported, VolumeCopiedToStore), exported
    assert exported.checksum == f"sha256:{put.checksum}"
    assert await stored_bytes(store, "exported", tmp_path / "out.raw") == content

    journal = str([event.payload for event in stack.events])
    assert str(store.config["path"]) not in journal, "the store's configuration never travels in an event"


async def test_a_wrong_checksum_is_refused_and_makes_no_volume(stack: Stack, tmp_path: Path) -> None:
    pool_id = await attach_pool(stack, tmp_path)
    store = store_in(tmp_path)
    source = tmp_path / "image.raw"
    source.write_bytes(os.urandom(MIB))
    driver = open_driver(FsBackupConfig(**store.config))
    await driver.put_image("base-image", ImageKind.TEMPLATE, source)
    await driver.close()
    command = CopyVolumeFromStore(
        pool_id=pool_id,
        volume_id=uuid4(),
        store=store,
        object_id="base-image",
        checksum="sha256:" + "0" * 64,
        host=HOST,
    )
    failed = await outcome(stack, await stack.send(command))
    assert isinstance(failed, VolumeCopyFromStoreFailed), failed
    assert failed.error.field == "checksum"


async def test_a_copy_past_its_deadline_leaves_no_object(stack: Stack, tmp_path: Path) -> None:
    pool_id = await attach_pool(stack, tmp_path)
    store = store_in(tmp_path)
    source = tmp_path / "image.raw"
    source.write_bytes(os.urandom(64 * MIB))
    driver = open_driver(FsBackupConfig(**store.config))
    await driver.put_image("big", ImageKind.TEMPLATE, source)
    volume_id = uuid4()
    made = await outcome(
        stack,
        await stack.send(
            CopyVolumeFromStore(pool_id=pool_id, volume_id=volume_id, store=store, object_id="big", host=HOST)
        ),
    )
    assert isinstance(made, VolumeCopiedFromStore), made

    command = CopyVolumeToStore(
        pool_id=pool_id, volume_id=volume_id, store=store, object_id="late", deadline_seconds=0.05, host=HOST
    )
    failed = await outcome(stack, await stack.send(command))
    assert isinstance(failed, VolumeCopyToStoreFailed), failed
    assert failed.error.code == "DEADLINE_EXCEEDED"
    assert "deadline" in failed.error.message
    with pytest.raises(NotFound):
        await driver.get_image("late", tmp_path / "late.raw")
    await driver.close()


async def test_a_qcow2_from_a_store_is_staged_on_the_pool_and_adopted(stack: Stack, tmp_path: Path) -> None:
    """qcow2fs adopts a staged qcow2 (`FileAdopter`): the agent stages it on the pool's filesystem and the volume is
    that file, renamed; nothing stays in the pool's staging directory, after a good copy or a refused one."""
    root = pool_directory(tmp_path)
    pool_id = await attach_pool(stack, tmp_path, root)
    store = store_in(tmp_path)
    raw, image = tmp_path / "image.raw", tmp_path / "image.qcow2"
    raw.write_bytes(os.urandom(2 * MIB))
    process = await asyncio.create_subprocess_exec("qemu-img", "convert", "-O", "qcow2", str(raw), str(image))
    assert await process.wait() == 0
    driver = open_driver(FsBackupConfig(**store.config))
    put = await driver.put_image("base-image", ImageKind.TEMPLATE, image)
    await driver.close()
    staging = root / "staging"

    def staged_files() -> list[Path]:
        return [path for path in staging.rglob("*") if path.is_file()]

    for checksum in ("sha256:" + "0" * 64, f"sha256:{put.checksum}"):
        command = CopyVolumeFromStore(
            pool_id=pool_id,
            volume_id=uuid4(),
            store=store,
            object_id="base-image",
            format=CopyFormat.QCOW2,
            checksum=checksum,
            host=HOST,
        )
        answer = await outcome(stack, await stack.send(command))
        assert staging.is_dir(), "the copy was staged on the pool"
        assert staged_files() == []
    assert isinstance(answer, VolumeCopiedFromStore), answer
    assert answer.locator is not None
    assert Path(answer.locator).read_bytes() == image.read_bytes()  # noqa: ASYNC240  # the very file, not a conversion
