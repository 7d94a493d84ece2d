"""Following an operation's progress events while the CLI waits for its outcome: every event of the operation's
correlation of a given type is handed to a callback (a progress bar's update), as it is recorded by the client's
watch."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

if TYPE_CHECKING:
    from services.cli.sending import Client

E = TypeVar("E")
REFRESH_SECONDS = 0.2  # how often the bar catches up with the events recorded (a display refresh)


@asynccontextmanager
async def following(
    client: "Client", correlation_id: UUID, kind: type[E], update: Callable[[E], None]
) -> AsyncIterator[None]:
    """Call `update` with each `kind` event of the operation while the block runs (the latest last)."""

    async def follow() -> None:
        seen = 0
        while True:
            events = client.watch.events
            for envelope in events[seen:]:
                if envelope.correlation_id == correlation_id and isinstance(envelope.payload, kind):
                    update(envelope.payload)
            seen = len(events)
            await asyncio.sleep(REFRESH_SECONDS)

    task = asyncio.create_task(follow())
    try:
        yield
    finally:
        task.cancel()
