"""Test helpers: wait for a condition with a deadline instead of sleeping."""

import asyncio
import contextlib
import inspect
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


@overload
async def assert_eventually(
    condition: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T: ...


@overload
async def assert_eventually(
    condition: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T: ...


async def assert_eventually(
    condition: Callable[[], Awaitable[T] | T], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll `condition` (a function or a coroutine function) until it returns a truthy value, and return it.

    Fails after `timeout` seconds, saying `what` was awaited.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        value = await result if inspect.isawaitable(result) else result
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what or condition!r}")
        await asyncio.sleep(interval)


async def kill_and_reap(process: asyncio.subprocess.Process) -> int:
    """SIGKILL an asyncio child unless it has already ended; return its exit status once reaped.

    Never `process.kill()` or `process.send_signal()` on a child that may have just exited: on Python 3.11 they
    poll it first (a waitpid), which can reap it under asyncio's child watcher; the watcher then reports 255
    instead of the real status (a test that saw its worker crash on purpose read 255 and failed).
    """
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # a zombie takes the signal; a reaped pid is not ours to kill
            os.kill(process.pid, signal.SIGKILL)
    return await process.wait()
