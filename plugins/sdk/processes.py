"""Child processes a plugin runs (a storage CLI, qemu-img): how to stop one that is no longer wanted."""

import asyncio
import contextlib
import os
import signal


async def kill_and_reap(process: asyncio.subprocess.Process) -> int:
    """SIGKILL an asyncio child unless it has already ended; return its exit status once reaped.

    `os.kill`, never `process.kill()` or `process.send_signal()`: on Python 3.11 they poll the child first (a
    waitpid), which can reap one that has just exited under asyncio's child watcher; the watcher then reports 255
    instead of the real status.
    """
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # a zombie takes the signal; a reaped pid is not ours to kill
            os.kill(process.pid, signal.SIGKILL)
    return await process.wait()
