"""Test helpers: wait for a condition with a deadline instead of sleeping."""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar, overload

import aiormq

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


async def queues_consumed(amqp_url: str, queues: Iterable[str]) -> bool:
    """True once every queue exists and has a consumer: the daemons serving them are ready for messages.

    Events are published to whoever is bound at that moment, so a test that starts daemons waits for this before it
    sets anything going: an event announced before its subscriber's queue existed is heard by nobody.
    """
    async with aiormq.connect(amqp_url) as connection:
        for queue in queues:
            channel = await connection.channel()  # a passive declare of a missing queue closes its channel
            try:
                declared = await channel.queue_declare(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return False
            if not declared.consumer_count:
                return False
            await channel.close()
    return True
