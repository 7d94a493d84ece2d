"""Blocking file work for rawfile (run in threads): sparse copies, atomic records."""

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

from plugins.sdk.errors import Aborted
from plugins.sdk.progress import ProgressCallback

BLOCK = 1024 * 1024


def sparse_copy(source: Path, target: Path, progress: ProgressCallback, stop: threading.Event | None = None) -> int:
    """Copy `source` to `target` leaving holes where the source reads zeros; return the size.

    When `stop` is set the copy ends at the next block with `Aborted` (what it wrote stays for the caller to remove).
    """
    size = source.stat().st_size
    zero = bytes(BLOCK)
    with source.open("rb") as reader, target.open("wb") as writer:
        done = 0
        while block := reader.read(BLOCK):
            if stop is not None and stop.is_set():
                raise Aborted(f"the copy of {source.name} was stopped")
            if block == zero[: len(block)]:
                writer.seek(len(block), os.SEEK_CUR)
            else:
                writer.write(block)
            done += len(block)
            progress(done, size)
        writer.truncate(size)
        writer.flush()
        os.fsync(writer.fileno())
    progress(size, size)
    return size


async def copy_file(source: Path, target: Path, progress: ProgressCallback) -> int:
    """`sparse_copy` in a thread that a cancelled caller (a deadline, a shutdown) stops at the next block; the partly
    written `target` is removed before the cancellation goes on, so no copy keeps writing a file nobody waits for."""
    stop = threading.Event()
    copying = asyncio.ensure_future(asyncio.to_thread(sparse_copy, source, target, progress, stop))
    try:
        return await asyncio.shield(copying)
    except asyncio.CancelledError:
        stop.set()
        await asyncio.wait([copying])
        await asyncio.to_thread(target.unlink, True)
        raise


def adopt_file(source: Path, target: Path) -> None:
    """Make a staged file the volume's: flushed, then renamed (the same filesystem: no byte is copied)."""
    with source.open("rb") as staged:
        os.fsync(staged.fileno())
    source.replace(target)


def make_file(path: Path, size: int, preallocate: bool) -> None:
    """A new raw file of `size` bytes, sparse unless `preallocate`."""
    with path.open("wb") as handle:
        if preallocate:
            os.posix_fallocate(handle.fileno(), 0, size)
        handle.truncate(size)
        os.fsync(handle.fileno())


def write_json(path: Path, data: dict[str, Any]) -> None:  # Any: a JSON object
    """Replace `path` with `data`, atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, sort_keys=True))
    temporary.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:  # Any: a JSON object
    """The record at `path`, or None."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None
