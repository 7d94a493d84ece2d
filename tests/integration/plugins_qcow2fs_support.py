"""Shared by the qcow2fs tests: an opened pool in the test's own directory, and guest-like writes and reads."""

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugins.qcow2fs import Qcow2fsConfig, Qcow2fsDriver

MIB = 1024 * 1024


def require_qemu_tools() -> None:
    """Fail (never skip) when the tools the plugin drives are missing."""
    for tool in ("qemu-img", "qemu-io"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: apt-get install qemu-utils", pytrace=False)


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[Qcow2fsDriver]:
    """A qcow2fs pool added in the test's own directory (removed with it)."""
    require_qemu_tools()
    root = tmp_path / "pool"
    root.mkdir()
    opened = Qcow2fsDriver(Qcow2fsConfig(path=root))
    await opened.add_pool("pool-1")
    yield opened
    await opened.close()


async def run(*args: str) -> None:
    """Run a tool; fail the test with its stderr if it fails."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"{args[0]} failed: {err.decode()} {out.decode()}"
    assert b"failed" not in out.lower(), out.decode()


async def guest_write(image: str | Path, pattern: int, offset: int, length: int) -> None:
    """Write like a guest would: through the image's chain, with qemu-io."""
    await run("qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {offset} {length}", str(image))


async def read_all(image: str | Path, scratch: Path) -> bytes:
    """The whole guest-visible content of an image (its chain flattened)."""
    target = scratch / f"read-{Path(image).name}.raw"
    await run("qemu-img", "convert", "-O", "raw", str(image), str(target))
    data = target.read_bytes()
    target.unlink()
    return data
