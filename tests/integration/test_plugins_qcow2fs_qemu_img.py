"""qemu-img as the plugin runs it: a call given up on leaves no qemu-img behind, still writing the image."""

import asyncio
import os
from pathlib import Path

import pytest

from plugins.qcow2fs.qemu_img import QemuImg, convert_args
from plugins.sdk.deadlines import within
from plugins.sdk.errors import DeadlineExceeded

pytestmark = pytest.mark.integration


def qemu_img_on(path: Path) -> list[int]:
    """The pids of the qemu-img processes whose command line names `path`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:  # it ended meanwhile
            continue
        if command and command[0].endswith(b"qemu-img") and str(path).encode() in command:
            pids.append(int(entry))
    return pids


async def test_a_cancelled_copy_kills_its_qemu_img(tmp_path: Path) -> None:
    source, target = tmp_path / "source.raw", tmp_path / "target.qcow2"
    source.write_bytes(os.urandom(4 << 20))  # data, not zeros: qemu-img has to copy it
    started = asyncio.Event()
    # 64 KiB/s: the copy would take a minute, so it is surely running when it is cancelled.
    copy = asyncio.create_task(
        QemuImg().run(
            "convert",
            "-p",
            "-r",
            "65536",
            "-f",
            "raw",
            "-O",
            "qcow2",
            str(source),
            str(target),
            on_percent=lambda _: started.set(),
        )
    )
    await asyncio.wait_for(started.wait(), timeout=30)
    assert qemu_img_on(target), "qemu-img should be copying"

    copy.cancel()
    with pytest.raises(asyncio.CancelledError):
        await copy

    assert qemu_img_on(target) == []  # killed and reaped before the cancellation went on


async def test_a_copy_that_fails_in_its_caller_kills_its_qemu_img(tmp_path: Path) -> None:
    source, target = tmp_path / "source.raw", tmp_path / "target.qcow2"
    source.write_bytes(os.urandom(4 << 20))

    def progress(_: float) -> None:
        assert qemu_img_on(target), "qemu-img should be copying"
        raise RuntimeError("the caller's progress report failed")

    with pytest.raises(RuntimeError, match="progress report failed"):
        await QemuImg().run(
            "convert", "-p", "-r", "65536", "-f", "raw", "-O", "qcow2", str(source), str(target), on_percent=progress
        )

    assert qemu_img_on(target) == []


def sleeping_qemu_img(tmp_path: Path, seconds: float) -> Path:
    """A qemu-img that records its pid in `<binary>.pid`, sleeps `seconds`, then succeeds."""
    binary = tmp_path / f"qemu-img-sleeps-{seconds:g}"
    binary.write_text(f'#!/bin/sh\necho $$ > "{binary}.pid"\nexec sleep {seconds:g}\n')
    binary.chmod(0o755)
    return binary


async def test_a_hung_qemu_img_ends_at_its_default_deadline_killed_and_reaped(tmp_path: Path) -> None:
    binary = sleeping_qemu_img(tmp_path, 600)
    with pytest.raises(DeadlineExceeded, match="qemu-img create"):
        await QemuImg(str(binary), timeout_seconds=0.5).run("create", "-f", "qcow2", str(tmp_path / "v.qcow2"), "1M")
    pid = int(Path(f"{binary}.pid").read_text())  # noqa: ASYNC240  # a test's quick look
    with pytest.raises(ProcessLookupError):  # killed and reaped: no such process any more
        os.kill(pid, 0)


async def test_an_operation_that_asked_for_more_time_is_not_cut_by_the_default(tmp_path: Path) -> None:
    binary = sleeping_qemu_img(tmp_path, 1)
    qemu = QemuImg(str(binary), timeout_seconds=0.1)
    await within(30, qemu.run("info", str(tmp_path)), "an operation given 30 s")


async def test_a_volume_is_flushed_before_qemu_img_exits_and_a_staging_copy_is_not(tmp_path: Path) -> None:
    """qemu-img convert leaves its writes in the page cache unless asked: the converts that make a volume's data
    (about to be recorded ready) ask for the flush, a copy out to a staging or export file does not."""
    volume = convert_args(tmp_path / "in.raw", tmp_path / "out.qcow2", source_format="raw", target_format="qcow2")
    staging = convert_args(
        tmp_path / "in.qcow2", tmp_path / "out.raw", source_format="qcow2", target_format="raw", durable=False
    )
    assert volume[volume.index("-t") + 1] == "writeback"
    assert "-t" not in staging
    process = await asyncio.create_subprocess_exec(
        "qemu-img", "create", "-q", "-f", "raw", str(tmp_path / "in.raw"), "1M"
    )
    assert await process.wait() == 0
    process = await asyncio.create_subprocess_exec("qemu-img", *volume)
    assert await process.wait() == 0, "qemu-img takes the flushed convert's arguments"
