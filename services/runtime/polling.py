"""A daemon part that looks for due work in its tables again and again (schedules, policies, maintenance jobs):
each pass claims what is due (`FOR UPDATE SKIP LOCKED`, so replicas share the work) and says whether it found any;
when it found none, the loop waits `poll` seconds before looking again. A pass that fails (the database restarting)
is logged and tried again; a pass cut short by `stop` is rolled back and run again by the next start."""

import asyncio
import contextlib
from abc import ABC, abstractmethod

import structlog

log = structlog.get_logger(__name__)


class PollingPart(ABC):
    """Runs `run_once` until stopped; `name` names its task and its log lines."""

    name = "poller"

    def __init__(self, *, poll: float) -> None:
        self.poll = poll
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run_once(self) -> bool:
        """One pass: claim and do what is due; False if nothing was."""

    def wanted(self) -> bool:
        """Whether the loop runs at all (a job turned off does not)."""
        return True

    async def start(self) -> None:
        """Start the loop in the background."""
        if self.wanted():
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Stop the loop (a pass in flight is rolled back, and is run again by the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                ran = await self.run_once()
            except Exception as error:  # the loop must outlive one failure (the database restarting)
                log.warning("pass failed; retrying", part=self.name, error=str(error), error_class=type(error).__name__)
                ran = False
            if not ran:
                await asyncio.sleep(self.poll)
