"""qemu-img as asyncio subprocesses, with its stderr translated into the SDK's errors.

Every call runs `qemu-img` without a shell and without blocking the event loop. `convert -p` progress is parsed
from its stdout (`    (42.00/100%)\r`) as it arrives. Every call has a deadline: what is left of its operation's
(`plugins.sdk.deadlines`), else `timeout_seconds`; past it qemu-img is killed and the call raises `DeadlineExceeded`.
"""

import asyncio
import json
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from plugins.sdk.deadlines import time_left, within
from plugins.sdk.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    StrataError,
    Transient,
)
from plugins.sdk.processes import kill_and_reap

_PERCENT = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")
QCOW2_MAGIC = b"QFI\xfb"


DEFAULT_TIMEOUT_SECONDS = 3600.0


class QemuImg:
    """Runs one qemu-img binary, each call within a deadline (`timeout_seconds` outside an operation's)."""

    def __init__(self, binary: str = "qemu-img", *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.binary = binary
        self.timeout_seconds = timeout_seconds

    async def run(self, *args: str, on_percent: Callable[[float], None] | None = None) -> bytes:
        """Run `qemu-img args...`; return its stdout, or raise the SDK error its stderr describes (`DeadlineExceeded`
        past the call's deadline, qemu-img killed)."""
        what = f"qemu-img {args[0] if args else ''}".strip()
        return await within(time_left(self.timeout_seconds), self._run(args, on_percent), what)

    async def _run(self, args: Sequence[str], on_percent: Callable[[float], None] | None) -> bytes:
        try:
            process = await asyncio.create_subprocess_exec(
                self.binary,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            raise FailedPrecondition(
                f"{self.binary} is not installed on this host (apt-get install qemu-utils)"
            ) from None
        assert process.stdout is not None
        assert process.stderr is not None
        stderr_task = asyncio.ensure_future(process.stderr.read())
        try:
            stdout = await _read_output(process.stdout, on_percent)
            stderr = await stderr_task
            returncode = await process.wait()
        except BaseException:
            # Cancelled (a deadline, a shutdown) or failed midway: qemu-img must not go on writing the image after
            # its caller has given up on it, so it is killed, and reaped before the cancellation goes on.
            stderr_task.cancel()
            await asyncio.shield(kill_and_reap(process))
            raise
        if returncode != 0:
            raise translate_error(args[0] if args else "", stderr.decode(errors="replace"))
        return stdout

    async def info(self, path: Path, *, chain: bool = False) -> list[dict[str, object]]:
        """`qemu-img info --output=json` of the image (and of its whole chain, top first, with `chain`)."""
        args = ["info", "--output=json", "-U"]
        if chain:
            args.append("--backing-chain")
        out = await self.run(*args, str(path))
        data = json.loads(out)
        return data if isinstance(data, list) else [data]


async def _read_output(stream: asyncio.StreamReader, on_percent: Callable[[float], None] | None) -> bytes:
    collected = bytearray()
    while chunk := await stream.read(4096):
        collected += chunk
        if on_percent is not None:
            matches = _PERCENT.findall(chunk)
            if matches:
                on_percent(float(matches[-1]))
    return bytes(collected)


def translate_error(command: str, stderr: str) -> StrataError:
    """The SDK error that qemu-img's message means; the message keeps qemu-img's words for the operator."""
    text = stderr.strip().splitlines()[-1] if stderr.strip() else f"qemu-img {command} failed"
    lowered = stderr.lower()
    if "no such file or directory" in lowered:
        return NotFound(text)
    if "no space left on device" in lowered or "disk quota exceeded" in lowered:
        return ResourceExhausted(text)
    if "failed to get" in lowered and "lock" in lowered:
        return Transient(f"the image is in use by another process: {text}")
    if "too large" in lowered or "invalid" in lowered or "unknown" in lowered or "shrink" in lowered:
        return InvalidArgument(text)
    if "permission denied" in lowered or "read-only" in lowered:
        return FailedPrecondition(text)
    return StrataError(text)


@dataclass(frozen=True)
class Qcow2Header:
    """The few fields of a qcow2 header the plugin needs, read without a subprocess."""

    size_bytes: int
    backing_file: str | None


def read_header(path: Path) -> Qcow2Header:
    """Read a qcow2 header (blocking: call it in a thread); `InvalidArgument` if the file is not qcow2."""
    try:
        with path.open("rb") as image:
            head = image.read(32)
            if len(head) < 32 or head[:4] != QCOW2_MAGIC:
                raise InvalidArgument(f"{path.name} is not a qcow2 image")
            backing_offset, backing_length = struct.unpack(">QI", head[8:20])
            size_bytes = struct.unpack(">Q", head[24:32])[0]
            backing: str | None = None
            if backing_offset and backing_length:
                image.seek(backing_offset)
                backing = image.read(backing_length).decode()
    except FileNotFoundError:
        raise NotFound(f"{path.name} does not exist") from None
    return Qcow2Header(size_bytes=size_bytes, backing_file=backing)


def convert_args(
    source: Path,
    target: Path,
    *,
    source_format: str | None,
    target_format: str,
    sparse: bool = True,
    durable: bool = True,
) -> Sequence[str]:
    """Arguments of a `qemu-img convert` with progress and out-of-order writes (faster on sparse sources).

    `durable` (a volume's data, about to be recorded ready) flushes the target before qemu-img exits (`-t
    writeback`): by default qemu-img convert leaves its writes in the page cache, and a host that crashed then
    would come back with a volume recorded ready and its data lost. A staging or export file need not be."""
    args = ["convert", "-p", "-W", "-O", target_format]
    if durable:
        args += ["-t", "writeback"]
    if source_format:
        args += ["-f", source_format]
    if not sparse:
        args += ["-S", "0"]
    return [*args, str(source), str(target)]
