"""The answer relay: publishes the answers queued in `bridge.answers` on CloudStack's exchange, oldest first, and
marks those the broker confirmed sent (a batch published at once, its confirms awaited together). An answer is
published at least once (a crash between the confirm and the mark repeats it; CloudStack's subscribers see a Completed
twice, as they may from CloudStack itself)."""

import asyncio
import contextlib

import structlog

from bus.postgres.pool import Pool
from schemas import Transient
from services.bridge import records
from services.bridge.link import CloudStackLink
from services.bridge.metrics import BridgeMetrics

log = structlog.get_logger(__name__)
BATCH = 100


class AnswerRelay:
    """A background task of the bridge; `wake` makes it look at once instead of at its next poll."""

    def __init__(self, pool: Pool, link: CloudStackLink, metrics: BridgeMetrics, *, poll: float = 0.5) -> None:
        self.pool, self.link, self.metrics, self.poll = pool, link, metrics, poll
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """An answer was queued (its transaction may still be committing: the next poll finds it then)."""
        self._woken.set()

    async def start(self) -> None:
        """Start relaying."""
        self._task = asyncio.create_task(self._run(), name="bridge-answers")

    async def stop(self) -> None:
        """Stop relaying (what is unsent stays queued)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self.poll)
            self._woken.clear()
            try:
                while await self.relay_once() == BATCH:
                    pass
            except Transient:
                await self.link.connected.wait()
            except Exception as error:  # the database or broker failed: the next round tries again
                log.warning("answers not published yet", error_class=type(error).__name__, error=str(error)[:300])

    async def relay_once(self) -> int:
        """Publish up to BATCH unsent answers; return how many were sent."""
        async with self.pool.acquire() as connection:
            unsent = await records.unsent_answers(connection, BATCH)
        # All in flight at once, written in order on the link's confirming channel, their confirms awaited together.
        outcomes = await asyncio.gather(
            *(self.link.publish(routing_key, body) for _, routing_key, body in unsent), return_exceptions=True
        )
        sent = [seq for (seq, _, _), outcome in zip(unsent, outcomes, strict=True) if outcome is None]
        if sent:
            async with self.pool.acquire() as connection:
                await records.mark_sent(connection, sent)
            self.metrics.answered(len(sent))
        failed = next((outcome for outcome in outcomes if isinstance(outcome, BaseException)), None)
        if failed is not None:
            raise failed  # the unsent stay queued for the next round
        return len(sent)
