"""Progress of the agent's long copies as events: each report in a small unit of work of its own (not the command's,
which commits only at the end), at most one a second, the latest value only.

A plugin may report from a thread and must not wait, so its callback only keeps the latest figures; a task on the
event loop publishes them while the copy runs. A report that cannot be published is logged and dropped: progress
is for watching, the copy's outcome travels in the command's answer.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog

from bus.ports import UnitOfWorkFactory
from plugins.sdk.progress import ProgressCallback
from schemas import Envelope, Event, StrataError

log = structlog.get_logger(__name__)

INTERVAL_SECONDS = 1.0


class _Latest:
    """The last figures a plugin reported (set from any thread, read on the loop), and the last ones published."""

    def __init__(self) -> None:
        self.figures: tuple[int, int] | None = None
        self.sent: tuple[int, int] | None = None

    def report(self, done_bytes: int, total_bytes: int) -> None:
        self.figures = (done_bytes, total_bytes)

    def unsent(self) -> tuple[int, int] | None:
        """The latest figures if they were not published yet (marked published)."""
        figures = self.figures
        if figures is None or figures == self.sent:
            return None
        self.sent = figures
        return figures


@asynccontextmanager
async def progress_events(
    units: UnitOfWorkFactory | None,
    cause: Envelope,
    make: Callable[[int, int], Event],
    *,
    producer: str,
    interval: float = INTERVAL_SECONDS,
) -> AsyncIterator[ProgressCallback]:
    """A progress callback for the block's copy; `make(done, total)` builds each event (caused by `cause`).

    The figures are published every `interval` while they change, and the last ones when the block ends well.
    """
    latest = _Latest()
    if units is None:
        yield latest.report
        return

    async def publish(figures: tuple[int, int]) -> None:
        try:
            async with units.begin("agent.progress", None) as uow:
                assert uow is not None  # no incoming message: never a duplicate
                uow.emit(Envelope.wrap(make(*figures), cause=cause, producer=producer))
        except (StrataError, OSError) as error:
            log.warning("a progress report was not published", error=str(error))

    async def publish_while_running() -> None:
        while True:
            await asyncio.sleep(interval)
            figures = latest.unsent()
            if figures is not None:
                await publish(figures)

    publisher = asyncio.create_task(publish_while_running())
    try:
        yield latest.report
    finally:
        publisher.cancel()
        await asyncio.wait([publisher])
    figures = latest.unsent()
    if figures is not None:
        await publish(figures)
