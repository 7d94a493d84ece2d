"""The dead letters on RabbitMQ: list, re-drive and purge the quorum queue `<ns>.dead`.

Reading is `basic.get` without ack on a channel of its own; closing that channel puts back every message that was
not chosen, so listing changes nothing.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Protocol

from aiormq.abc import AbstractChannel, AbstractConnection
from pamqp.commands import Basic

from bus.dead_letters import dead_letter_of
from bus.errors import BrokerUnavailable, Unroutable
from bus.ports import DeadLetter, WireMessage
from bus.rabbit_connection import CONNECTION_ERRORS
from bus.rabbit_wire import wire_of
from bus.topology import (
    ATTEMPTS_HEADER,
    DEATH_REASON_HEADER,
    ERROR_CLASS_HEADER,
    ORIGIN_QUEUE_HEADER,
    RETRY_LEVEL_HEADER,
    Topology,
)
from schemas.errors import NotFound

_SCAN_LIMIT = 100_000
_DEATH_HEADERS = frozenset(
    {ATTEMPTS_HEADER, DEATH_REASON_HEADER, ERROR_CLASS_HEADER, ORIGIN_QUEUE_HEADER, RETRY_LEVEL_HEADER}
)


class DeadLettersLink(Protocol):
    """What the dead letters need of the transport that holds them (`RabbitTransport` is one)."""

    @property
    def topology(self) -> Topology:
        """The namespace's names (the dead queue)."""

    async def wait_connection(self) -> AbstractConnection:
        """The transport's connection, once it is open."""

    async def publish_raw(self, exchange: str, routing_key: str, message: WireMessage) -> None:
        """Publish to a full exchange name ('' is the default exchange), confirmed, mandatory, persistent."""


class RabbitDeadLetters:
    """Operator actions on one namespace's dead letters."""

    def __init__(self, transport: DeadLettersLink) -> None:
        self._transport = transport

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[AbstractChannel]:
        try:
            connection = await self._transport.wait_connection()
            channel = await connection.channel(publisher_confirms=False)
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailable(f"cannot read the dead letters: {type(error).__name__}") from None
        try:
            yield channel
        finally:
            if not channel.is_closed:
                await channel.close()  # what was read and not acked goes back, in place

    async def _scan(self, channel: AbstractChannel, limit: int) -> list[tuple[int, DeadLetter]]:
        found: list[tuple[int, DeadLetter]] = []
        while len(found) < limit:
            delivered = await channel.basic_get(self._transport.topology.dead_queue, no_ack=False)
            if not isinstance(delivered.delivery, Basic.GetOk):
                break
            found.append((delivered.delivery.delivery_tag or 0, dead_letter_of(wire_of(delivered))))
        return found

    async def list(self, limit: int = 1000) -> list[DeadLetter]:
        """Up to `limit` dead letters, oldest first, left in place."""
        async with self._reader() as channel:
            return [letter for _, letter in await self._scan(channel, limit)]

    async def count(self) -> int:
        """How many dead letters wait (the queue's depth, read without touching a message)."""
        async with self._reader() as channel:
            declared = await channel.queue_declare(self._transport.topology.dead_queue, passive=True)
            return declared.message_count or 0

    async def redrive(self, message_ids: Sequence[str] | None) -> int:
        """Publish the chosen dead letters back to their origin queue (attempts reset), then remove them."""
        wanted = None if message_ids is None else set(message_ids)
        moved = 0
        async with self._reader() as channel:
            for tag, letter in await self._scan(channel, _SCAN_LIMIT):
                if wanted is not None and letter.message.message_id not in wanted:
                    continue
                if not letter.origin_queue:
                    raise NotFound(f"dead letter {letter.message.message_id} names no origin queue")
                headers = {k: v for k, v in letter.message.headers.items() if k not in _DEATH_HEADERS}
                message = replace(letter.message, headers=headers)
                try:
                    await self._transport.publish_raw("", letter.origin_queue, message)
                except Unroutable:
                    raise NotFound(
                        f"origin queue {letter.origin_queue} of {letter.message.message_id} does not exist"
                    ) from None
                await channel.basic_ack(tag)
                moved += 1
        return moved

    async def purge(self, message_ids: Sequence[str] | None) -> int:
        """Delete the chosen dead letters (all if None)."""
        async with self._reader() as channel:
            if message_ids is None:
                purged = await channel.queue_purge(self._transport.topology.dead_queue)
                return purged.message_count or 0
            wanted = set(message_ids)
            removed = 0
            for tag, letter in await self._scan(channel, _SCAN_LIMIT):
                if letter.message.message_id in wanted:
                    await channel.basic_ack(tag)
                    removed += 1
            return removed
