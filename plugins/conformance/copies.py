"""What the copy test of the kit needs: a source big enough to be caught midway, a copy cancelled at its first
progress report (as a deadline cuts one), and the check of a progress sequence."""

import asyncio
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

from plugins.sdk.progress import ProgressCallback

MIB = 1024 * 1024
LARGE_SOURCE_BYTES = 64 * MIB


def write_large_source(directory: Path) -> Path:
    """A raw image of random data (no holes to skip), large enough that a copy reports progress before its end."""
    path = directory / "large-source.raw"
    with path.open("wb") as handle:
        for _ in range(LARGE_SOURCE_BYTES // MIB):
            handle.write(os.urandom(MIB))
    return path


async def stopped_at_first_report(copy: Callable[[ProgressCallback], Awaitable[object]]) -> bool:
    """Run `copy(progress)` as a task and cancel it at its first progress report, as a deadline cuts a copy; return
    whether it was cut (on a loaded machine a small copy may end before the cancellation reaches it, which is fine:
    the caller checks that nothing partial is left either way).

    The callback may be called from a thread (a plugin copying in one), so the cancel goes through the loop.
    """
    loop = asyncio.get_running_loop()
    task: asyncio.Task[object] | None = None

    def report(done: int, total: int) -> None:
        if task is not None:
            loop.call_soon_threadsafe(task.cancel)

    async def run() -> object:
        return await copy(report)

    task = asyncio.ensure_future(run())
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # the caller itself was cancelled
        return True
    return False


def assert_progress_reaches(reports: list[tuple[int, int]], size: int) -> None:
    """Progress never goes back, never passes the total, and ends at the whole size."""
    assert reports, "the copy reported no progress"
    done = [report[0] for report in reports]
    assert done == sorted(done), f"progress went backwards: {done}"
    assert all(0 <= report[0] <= report[1] for report in reports), f"progress past the total: {reports}"
    assert reports[-1] == (size, size), f"progress ended at {reports[-1]}, not ({size}, {size})"


def qemu_img_convert(source: Path, target: Path, target_format: str) -> None:
    """Convert a raw file to `target_format` with qemu-img (the kit's tool for staging files in a plugin's format)."""
    tool = shutil.which("qemu-img")
    if tool is None:
        raise RuntimeError("qemu-img is not installed: apt-get install qemu-utils")
    subprocess.run([tool, "convert", "-f", "raw", "-O", target_format, str(source), str(target)], check=True)
