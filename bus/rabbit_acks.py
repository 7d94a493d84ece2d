"""Acks of one consumer channel, coalesced: one `basic.ack(multiple=True)` every few milliseconds for the run of
delivered messages that are all done, and single acks for those done out of order (never held back: a message
waiting behind a slow one would take a prefetch slot for nothing).

A tag settled on its own (ack out of order, reject) is never the tag of a multiple ack, which RabbitMQ would refuse
as unknown; a multiple ack passes over it harmlessly.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable

import structlog
from aiormq.abc import AbstractChannel

from bus.rabbit_connection import CONNECTION_ERRORS

log = structlog.get_logger(__name__)
FLUSH_COUNT = 64  # acks sent together at most this many at a time...
FLUSH_DELAY = 0.005  # ...or after this many seconds, whichever comes first


class AckBatcher:
    """Settles the deliveries of one channel; tags arrive in increasing order."""

    def __init__(self, channel: AbstractChannel) -> None:
        self._channel = channel
        self._delivered: deque[int] = deque()
        self._done: set[int] = set()
        self._settled_alone: set[int] = set()
        self._flushing: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def delivered(self, tag: int) -> None:
        """Note a delivery; it stays unsettled until acked or settled alone."""
        self._delivered.append(tag)

    def ack(self, tag: int) -> None:
        """Ack `tag` within a few milliseconds, with its neighbours where possible."""
        self._done.add(tag)
        if len(self._done) >= FLUSH_COUNT:
            self._flush_now()
        elif self._timer is None and self._flushing is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self._flush_now)

    def flush(self) -> None:
        """Send the acks done so far now, without waiting for more (a batch's last settlement)."""
        if self._done:
            self._flush_now()

    def _flush_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def reject(self, tag: int) -> None:
        """Return `tag` to the queue now."""
        self._settled_alone.add(tag)
        await self._send(self._channel.basic_reject(tag, wait=False))

    async def _flush(self) -> None:
        """Flush until nothing is done and unsent. One flush at a time: a multiple ack written before a single ack
        it passes over would make that single ack unknown to RabbitMQ (which closes the channel for it)."""
        try:
            while self._done and not self._channel.is_closed:  # closed: the broker requeued what is unsettled
                delivered, done, alone = self._delivered, self._done, self._settled_alone
                highest = 0
                while delivered and (delivered[0] in done or delivered[0] in alone):
                    tag = delivered.popleft()
                    if tag in done:
                        done.discard(tag)
                        highest = tag
                    else:
                        alone.discard(tag)
                singles = sorted(done)
                alone.update(singles)
                done.clear()
                for tag in singles:  # before the multiple ack, which may pass over them once they are sent
                    await self._send(self._channel.basic_ack(tag, wait=False))
                if highest:
                    await self._send(self._channel.basic_ack(highest, multiple=True, wait=False))
        finally:
            self._flushing = None

    async def drain(self) -> None:
        """Send the acks still waiting."""
        if self._done:
            self._flush_now()
        if self._flushing is not None:
            await self._flushing

    async def _send(self, settle: Awaitable[object]) -> None:
        try:
            await settle
        except CONNECTION_ERRORS:
            log.info("settlement lost with the channel; the broker will redeliver")
