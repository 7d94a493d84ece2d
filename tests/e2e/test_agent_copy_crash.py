"""The agent killed (SIGKILL) in the middle of a copy from a pool to an image store, as a process: the command is
redelivered to the next agent of the host, which does the copy again (removing the dead agent's staging file, for a
qcow2 copy staged through a file; a raw copy reads the volume where it lies); the store then holds the volume's
bytes, complete, and nothing is left in staging."""

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from plugins.fsbackup import FsBackupConfig
from plugins.fsbackup.driver import open_driver
from plugins.sdk.types import ImageKind
from schemas.agent import (
    AttachPoolToHost,
    CopyFormat,
    CopyVolumeFromStore,
    CopyVolumeToStore,
    PoolAttachedToHost,
    PoolAttachToHostFailed,
    StoreAccess,
    VolumeCopiedFromStore,
    VolumeCopiedToStore,
    VolumeCopyFromStoreFailed,
    VolumeCopyToStoreFailed,
)
from services.cli.sending import Client
from tests.e2e.daemon_processes import HOST, DaemonProcess, daemon_env, remove_namespace
from tests.helpers import assert_eventually
from tests.integration.plugins_qcow2fs_support import run as run_tool

pytestmark = pytest.mark.e2e
MIB = 1 << 20


@pytest.fixture
async def env(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    (tmp_path / "tmp").mkdir()
    yield daemon_env(database_url, amqp_url, namespace, TMPDIR=str(tmp_path / "tmp"))
    await remove_namespace(amqp_url, namespace)


def staged_files(tmp_path: Path) -> list[Path]:
    return [path for path in (tmp_path / "tmp").rglob("*") if path.is_file() and path.stat().st_size > 0]


def export_started(tmp_path: Path) -> list[Path]:
    """The marker the store's writer puts up before its first chunk of the export."""
    return list((tmp_path / "store" / "images" / "locks" / "backup").glob("export.*"))


@pytest.mark.parametrize("copy_format", [CopyFormat.QCOW2, CopyFormat.RAW])
async def test_a_copy_cut_by_a_killed_agent_is_done_again_by_the_next(
    env: dict[str, str], amqp_url: str, namespace: str, tmp_path: Path, copy_format: CopyFormat
) -> None:
    pool_dir, store_dir = tmp_path / "pool", tmp_path / "store"
    pool_dir.mkdir()
    store_dir.mkdir()
    store = StoreAccess(store_id=uuid.uuid4(), plugin="fsbackup", config={"path": str(store_dir)})
    content = tmp_path / "content.raw"
    content.write_bytes(os.urandom(256 * MIB))
    driver = open_driver(FsBackupConfig(path=str(store_dir)))
    await driver.put_image("source", ImageKind.TEMPLATE, content)

    first = await DaemonProcess.start(env, "run", "agent")
    second: DaemonProcess | None = None
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="agent-crash-test")
    try:
        async with Client(transport) as client:
            pool_id, volume_id = uuid.uuid4(), uuid.uuid4()
            attach = AttachPoolToHost(pool_id=pool_id, plugin="qcow2fs", config={"path": str(pool_dir)}, host=HOST)
            await client.send(attach, (PoolAttachedToHost,), (PoolAttachToHostFailed,), timeout=60.0)
            made = CopyVolumeFromStore(
                pool_id=pool_id, volume_id=volume_id, store=store, object_id="source", format=CopyFormat.RAW, host=HOST
            )
            await client.send(made, (VolumeCopiedFromStore,), (VolumeCopyFromStoreFailed,), timeout=120.0)

            export = await client.publish(
                CopyVolumeToStore(
                    pool_id=pool_id,
                    volume_id=volume_id,
                    store=store,
                    object_id="export",
                    format=copy_format,
                    host=HOST,
                )
            )
            if copy_format is CopyFormat.QCOW2:
                await assert_eventually(lambda: staged_files(tmp_path), timeout=60.0, what="the copy's staging file")
                await first.kill()
                assert staged_files(tmp_path), "the killed agent's staging file is there until the next agent starts"
            else:
                await assert_eventually(lambda: export_started(tmp_path), timeout=60.0, what="the export's start")
                await first.kill()

            second = await DaemonProcess.start(env, "run", "agent")
            done = await client.outcome(export, (VolumeCopiedToStore,), (VolumeCopyToStoreFailed,), timeout=120.0)
            assert isinstance(done, VolumeCopiedToStore), done
        back = tmp_path / "back.raw"
        await driver.get_image("export", back)
        if copy_format is CopyFormat.QCOW2:
            flat = tmp_path / "back-flat.raw"
            await run_tool("qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(back), str(flat))
            back = flat
        assert back.read_bytes() == content.read_bytes()  # a test's quick look
        assert staged_files(tmp_path) == [], "a staging file outlived its copy"
    finally:
        await driver.close()
        await first.kill()
        if second is not None:
            assert await second.terminate() == 0, second.show_log()
