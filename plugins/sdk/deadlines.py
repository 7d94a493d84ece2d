"""Deadlines for plugin calls: a call that runs past its time is cancelled and reported as `DeadlineExceeded`.

Cancelling is what stops the work: a qemu-img call kills and reaps its process when cancelled, an S3 request drops
its connection. `within` gives a call a deadline, and everything the call awaits inside sees it: a plugin's own
tool (qemu-img) takes `time_left(its default)`, so that an operation given more time than the tool's default (a long
copy that asked for it) is not cut short by the default, and a call made outside any operation still has one.
"""

import asyncio
from collections.abc import Awaitable
from contextvars import ContextVar
from typing import TypeVar

from schemas.errors import DeadlineExceeded

T = TypeVar("T")

# The loop time by which the innermost `within` of the running task must end (None outside any).
_ends: ContextVar[float | None] = ContextVar("strata_deadline_ends", default=None)


def time_left(default: float) -> float:
    """Seconds left before the deadline of the `within` this call runs inside, else `default`."""
    ends = _ends.get()
    return default if ends is None else max(ends - asyncio.get_running_loop().time(), 0.0)


async def within(seconds: float, call: Awaitable[T], what: str) -> T:
    """Await `call` for at most `seconds`; past that it is cancelled and `DeadlineExceeded` names `what`."""
    ends = asyncio.get_running_loop().time() + seconds
    outer = _ends.get()
    token = _ends.set(ends if outer is None else min(ends, outer))
    try:
        async with asyncio.timeout_at(ends):
            return await call
    except TimeoutError:
        raise DeadlineExceeded(f"{what} did not finish within its deadline of {seconds:g} s and was stopped") from None
    finally:
        _ends.reset(token)
