"""Where the agent keeps the staging files of its copies: `<tmp>/strata-copy-<host>/<pid>/`, one directory per copy.

An agent killed in the middle of a copy leaves its staging file behind (its command is redelivered and done again
by the next agent). When an agent starts, it removes what agents of its host that no longer run left there (their
process is gone); the directories of live agents (another worktree's, a test's) are left alone.
"""

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


class StagingArea:
    """This agent's staging directory; started as a part of the agent's service (it clears dead agents' leftovers)."""

    def __init__(self, host: str, root: Path | None = None) -> None:
        self.host_root = (root or Path(tempfile.gettempdir())) / f"strata-copy-{host.replace('/', '-')}"
        self.own = self.host_root / str(os.getpid())

    def _clear_dead(self) -> list[str]:
        removed = []
        if self.host_root.is_dir():
            for entry in self.host_root.iterdir():
                if entry.name.isdigit() and int(entry.name) != os.getpid() and not _alive(int(entry.name)):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry.name)
        self.own.mkdir(parents=True, exist_ok=True)
        return removed

    async def start(self) -> None:
        """Remove what dead agents of this host left, and make this agent's directory."""
        removed = await asyncio.to_thread(self._clear_dead)
        if removed:
            log.info("removed staging files of agents that no longer run", pids=removed)

    async def stop(self) -> None:
        """Remove this agent's directory (its copies have finished or were given up)."""
        await asyncio.to_thread(shutil.rmtree, self.own, True)

    @asynccontextmanager
    async def directory(self) -> AsyncIterator[Path]:
        """A fresh directory for one copy's staging file, removed afterwards whatever happened."""
        await asyncio.to_thread(self.own.mkdir, parents=True, exist_ok=True)
        directory = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="copy-", dir=self.own))
        try:
            yield directory
        finally:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, directory, True))
