"""Test helpers: wait for a condition with a deadline instead of sleeping."""

import asyncio
import inspect
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
