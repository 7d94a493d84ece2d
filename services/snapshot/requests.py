"""Requests waiting for an agent (`services.runtime.requests`): the snapshot service hands the data-plane work to the
agent of the volume's pool, keeps who asked in `snapshot.operations`, and answers them when the agent's event
arrives.
"""

from collections.abc import Awaitable, Callable
from typing import ClassVar
from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope, Event, Message
from schemas.errors import StrataError
from services.runtime import requests
from services.runtime.requests import announce, answer, refuse, to_agent
from services.snapshot.repository import Connection

PRODUCER = "snapshot"
__all__ = ["PRODUCER", "Requester", "announce", "answer", "refuse", "refusing", "remember", "take", "to_agent"]


class Requester(requests.Requester):
    """A request the snapshot service answers."""

    producer: ClassVar[str] = PRODUCER


async def refusing(
    uow: UnitOfWork,
    envelope: Envelope,
    failed: Callable[[StrataError], Event],
    body: Callable[[], Awaitable[Message | None]],
) -> Message | None:
    """Run `body` in a savepoint; a refusal leaves nothing and is answered with `failed` (`requests.refusing`)."""
    return await requests.refusing(uow, envelope, failed, body, requester=Requester)


async def remember(
    connection: Connection, sent: Envelope, requester: Requester, *, kind: str, snapshot_id: UUID, volume_id: UUID
) -> None:
    """Keep who asked until the agent answers `sent`."""
    await connection.execute(
        "INSERT INTO snapshot.operations (agent_message_id, kind, snapshot_id, volume_id, request) "
        "VALUES ($1, $2, $3, $4, $5::jsonb)",
        sent.message_id,
        kind,
        snapshot_id,
        volume_id,
        requester.to_json(),
    )


async def take(
    connection: Connection, kind: str, snapshot_id: UUID, volume_id: UUID, causation_id: UUID | None
) -> list[Requester]:
    """Everyone waiting for this outcome (several saga attempts may wait on one snapshot); forgotten once taken.

    The agent's answer names the command it answers (causation id); answers for the same object and kind settle
    every request on it, since the plugin's calls are idempotent and the outcome is the same.
    """
    rows = await connection.fetch(
        "DELETE FROM snapshot.operations WHERE agent_message_id = $1 OR (kind = $2 AND snapshot_id = $3 "
        "AND volume_id = $4) RETURNING request::text AS request",
        causation_id,
        kind,
        snapshot_id,
        volume_id,
    )
    return [Requester.from_json(row["request"]) for row in rows]
