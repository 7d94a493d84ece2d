"""Where the agent keeps the staging files of its copies: `<tmp>/strata-copy-<host>/<pid>/`, one directory per copy
(or the same under a pool's staging directory, for a file the pool adopts).

An agent killed in the middle of a copy leaves its staging file behind (its command is redelivered and done again
by the next agent). When an agent starts, it removes what agents of its host that no longer run left in the
temporary directory; under a pool's staging directory it does so when it first stages there (the redelivered copy
does), and removing the pool removes the rest. The directories of live agents (another worktree's, a test's) are
left alone.
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
    """This agent's staging directories; started as a part of the agent's service (it clears dead agents' leftovers).

    The default root is the host's temporary directory; a copy into a pool that adopts staged files stages on the
    pool's own filesystem instead (`directory(root)`), where the same layout keeps each host's agents apart (a pool
    on a shared mount is seen by the agents of several hosts: only this host's dead agents are cleared)."""

    def __init__(self, host: str, root: Path | None = None) -> None:
        self.name = f"strata-copy-{host.replace('/', '-')}"
        self.host_root = (root or Path(tempfile.gettempdir())) / self.name
        self.own = self.host_root / str(os.getpid())
        self._roots: dict[Path, Path] = {}  # every root used so far -> this agent's directory there

    def _clear_dead(self, host_root: Path) -> list[str]:
        removed = []
        if host_root.is_dir():
            for entry in host_root.iterdir():
                if entry.name.isdigit() and int(entry.name) != os.getpid() and not _alive(int(entry.name)):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry.name)
        (host_root / str(os.getpid())).mkdir(parents=True, exist_ok=True)
        return removed

    async def _own_under(self, root: Path | None) -> Path:
        if root is None:
            return self.own
        if root not in self._roots:
            host_root = root / self.name
            removed = await asyncio.to_thread(self._clear_dead, host_root)
            if removed:
                log.info("removed staging files of agents that no longer run", pids=removed, root=str(root))
            self._roots[root] = host_root / str(os.getpid())
        return self._roots[root]

    async def start(self) -> None:
        """Remove what dead agents of this host left, and make this agent's directory."""
        removed = await asyncio.to_thread(self._clear_dead, self.host_root)
        if removed:
            log.info("removed staging files of agents that no longer run", pids=removed)

    async def stop(self) -> None:
        """Remove this agent's directories (its copies have finished or were given up)."""
        for own in (self.own, *self._roots.values()):
            await asyncio.to_thread(shutil.rmtree, own, True)

    @asynccontextmanager
    async def directory(self, root: Path | None = None) -> AsyncIterator[Path]:
        """A fresh directory for one copy's staging file (under `root`, a pool's staging directory, when given),
        removed afterwards whatever happened."""
        own = await self._own_under(root)
        await asyncio.to_thread(own.mkdir, parents=True, exist_ok=True)
        directory = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="copy-", dir=own))
        try:
            yield directory
        finally:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, directory, True))
