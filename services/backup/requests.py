"""Requests waiting for an agent (`services.runtime.requests`): the backup service hands data-plane work to an
agent, keeps who asked in `backup.operations`, and answers them when the agent's event arrives.
"""

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar
from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope, Event, Message
from schemas.errors import StrataError
from services.runtime import requests
from services.runtime.requests import announce, answer, refuse

PRODUCER = "backup"
Connection = Any  # the unit of work's asyncpg connection
__all__ = ["PRODUCER", "Requester", "announce", "answer", "refuse", "refusing", "take", "to_agent"]


class Requester(requests.Requester):
    """A request the backup service answers."""

    producer: ClassVar[str] = PRODUCER


async def to_agent(uow: UnitOfWork, requester: Requester, command: Message, *, kind: str, backup_id: UUID) -> None:
    """Send a command to an agent on behalf of `requester`, and remember who waits for its answer."""
    envelope = requests.to_agent(uow, requester, command)
    await uow.connection.execute(
        "INSERT INTO backup.operations (agent_message_id, kind, backup_id, request) VALUES ($1, $2, $3, $4::jsonb)",
        envelope.message_id,
        kind,
        backup_id,
        requester.to_json(),
    )


async def take(uow: UnitOfWork, kind: str, backup_id: UUID, envelope: Envelope) -> list[Requester]:
    """Everyone waiting for this outcome (forgotten once taken); when nobody does, the outcome is still announced."""
    rows = await uow.connection.fetch(
        "DELETE FROM backup.operations WHERE agent_message_id = $1 OR (kind = $2 AND backup_id = $3) "
        "RETURNING request::text AS request",
        envelope.causation_id,
        kind,
        backup_id,
    )
    found = [Requester.from_json(row["request"]) for row in rows]
    return found or [Requester(envelope.causation_id or envelope.message_id, envelope.correlation_id)]


async def refusing(
    uow: UnitOfWork,
    envelope: Envelope,
    failed: Callable[[StrataError], Event],
    body: Callable[[], Awaitable[None]],
) -> None:
    """Run `body` in a savepoint; a refusal leaves nothing and is answered with `failed` (`requests.refusing`)."""
    await requests.refusing(uow, envelope, failed, body, requester=Requester)
