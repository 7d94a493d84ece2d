"""What the replay tool asks of RabbitMQ: the dead letters of the namespace, and their re-drive.

The journal knows a message was sent; only the broker knows it died: `<namespace>.dead` holds it with its origin
queue. Reading leaves every dead letter in place (see `bus.rabbit_dead`).
"""

from collections.abc import Sequence
from uuid import UUID

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings


async def dead_letter_origins(settings: BusSettings) -> dict[UUID, str]:
    """The namespace's dead letters: message id -> the queue each came from."""
    transport = RabbitTransport(settings, purpose="cli", declare_topology=False)
    await transport.start()
    try:
        letters = await transport.list_dead(limit=100_000)
    finally:
        await transport.close()
    origins = {}
    for letter in letters:
        try:
            origins[UUID(letter.message.message_id)] = letter.origin_queue
        except ValueError:
            continue  # not a strata message id: it cannot be in the journal either
    return origins


async def redrive_dead(settings: BusSettings, message_ids: Sequence[UUID]) -> int:
    """Send the named dead letters back to their origin queues (attempts reset); return how many moved."""
    transport = RabbitTransport(settings, purpose="cli", declare_topology=False)
    await transport.start()
    try:
        return await transport.redrive_dead([str(message_id) for message_id in message_ids])
    finally:
        await transport.close()
