"""How a handler tells the worker that there is work: an in-process nudge, on top of the worker's poll.

The nudge is given before the handler's transaction commits, so the worker may look too early; its poll (about a
second) then finds the work. Another replica's work is found by the poll alone.
"""

import asyncio


class Wakeup:
    """A nudge the worker waits on, with a timeout (its poll)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def soon(self) -> None:
        """Wake the worker (a little later, so that the handler's transaction has usually committed)."""
        asyncio.get_running_loop().call_later(0.05, self._event.set)

    async def wait(self, timeout: float) -> None:
        """Return when nudged or after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return
        finally:
            self._event.clear()
