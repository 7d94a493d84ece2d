"""Commands that no queue takes: retried for a bounded time by the outbox relay, then failed visibly.

A command that no queue is bound for (a mistyped host or cluster, a service never started) is unroutable: its
publish raises `Unroutable`, and the relay retries it with its back-off, so that an agent or service starting late
still gets it. Once the row is older than `RelaySettings.undeliverable_after`, the relay gives up on it, in one
transaction: the row is marked given up (it leaves the backlog, and stays for an operator's look), and the sender is
told by an event in the outbox, caused by the command (same correlation, saga and step):
- a saga's step gets `StepFailed`, so the saga fails the step (and compensates) instead of waiting for a reply;
- a command that names the event its handler would have failed with (`Command.undeliverable`: `agent.pool.attach`
  says `agent.pool.attach.failed`, so a pool add with a mistyped host is refused and its pool Removed) gets that;
- any other command, `bus.command.undeliverable`.
A copy of the command then goes to the dead letters with the reason, so that `strata dlq list` shows it (a redrive
refuses it: it names no origin queue, and the operation it belonged to has failed already).
"""

from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import structlog

from bus.codec import decode
from bus.errors import Unroutable
from bus.ports import HeaderValue, Transport, WireMessage
from bus.postgres.unit_of_work import PostgresUnitOfWorkFactory
from bus.topology import ATTEMPTS_HEADER, DEATH_REASON_HEADER, ERROR_CLASS_HEADER
from schemas import Command, Envelope, Event, StrataError
from schemas.delivery import CommandUndeliverable
from schemas.sagas import StepFailed

log = structlog.get_logger(__name__)
PRODUCER = "outbox-relay"


def is_undeliverable(row: asyncpg.Record, outcome: BaseException | None, now: datetime, after: float) -> bool:
    """The row is a command that no queue took, and it has been retried for `after` seconds: give up on it."""
    return (
        isinstance(outcome, Unroutable)
        and row["exchange"] == "commands"
        and (now - row["created_at"]).total_seconds() >= after
    )


class UndeliverableCommands:
    """Gives up on undeliverable commands of one outbox (see the module's docstring)."""

    def __init__(self, units: PostgresUnitOfWorkFactory, transport: Transport) -> None:
        self._units = units
        self._transport = transport
        self._give_up = (
            f"UPDATE {units.schema}.outbox SET given_up_at = now(), attempts = attempts + 1, last_error = $2 "
            "WHERE id = $1 AND sent_at IS NULL AND given_up_at IS NULL"
        )

    async def give_up(self, row: asyncpg.Record, wire: WireMessage, error: Unroutable) -> None:
        """Fail the command of `row` (its wire form `wire`): mark it, tell its sender, dead-letter a copy."""
        age = (datetime.now(UTC) - row["created_at"]).total_seconds()
        reason = Unroutable(
            f"no queue takes {wire.type} (routing key {row['routing_key']!r}) after {age:.0f}s of retries: "
            "is the host or cluster mistyped, or its agent or service not running?"
        )
        try:
            command: Envelope | None = decode(wire)
        except StrataError:
            command = None  # a type this process does not know: the row and the dead letter still say it
        async with self._units.begin(PRODUCER, None) as uow:
            assert uow is not None
            status = await uow.connection.execute(self._give_up, row["id"], f"{reason.code}: {reason.message}"[:500])
            if status.endswith(" 0"):
                return  # another relay gave up on it, or it went out meanwhile
            if command is not None:
                uow.emit(Envelope.wrap(_failure(command, reason), cause=command, producer=PRODUCER))
        log.error("command undeliverable; its operation fails", type=wire.type, message_id=wire.message_id)
        headers: dict[str, HeaderValue] = {
            **wire.headers,
            DEATH_REASON_HEADER: reason.message,
            ERROR_CLASS_HEADER: type(reason).__name__,
            ATTEMPTS_HEADER: int(row["attempts"]) + 1,
        }
        try:
            await self._transport.publish("dead", row["routing_key"], replace(wire, headers=headers))
        except StrataError as dead_error:  # the failure is committed and journaled: the copy is for a look only
            log.warning("could not dead-letter an undeliverable command", error=dead_error.message)


def _failure(command: Envelope, reason: Unroutable) -> Event:
    """What the command's sender is told (see the module's docstring)."""
    info = reason.info()
    if command.saga_id is not None:
        return StepFailed(error=info)
    payload = command.payload
    named = payload.undeliverable(info) if isinstance(payload, Command) else None
    return named or CommandUndeliverable(
        command_type=command.type, command_routing_key=payload.routing_key(), error=info
    )
