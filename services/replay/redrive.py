"""Re-drive: send selected commands or dead letters into the live system again, after a preview.

A plan says what would be sent, how many, and to which queues; nothing is sent unless the operator asks for it
(`--execute`): EventStoreDB #3844 replayed 380k parked events with no warning. A command is sent again under a new
message id (the old one is in its handler's inbox: the same id would be taken for a duplicate), caused by the
original, with its correlation, saga and step, through the outbox in one transaction with the record of the
re-drive. A dead letter goes back to its origin queue (the broker's own re-drive, attempts reset). Every re-drive is
journaled as an operator action, `replay.redriven`: who, why, and which messages became which.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from pydantic import Field

from bus.codec import encode
from bus.postgres import PostgresUnitOfWorkFactory
from bus.postgres.migrate import DEFAULT_SCHEMA
from bus.postgres.pool import Pool
from bus.postgres.records import journal_insert
from bus.topology import Topology, topic_matches
from schemas import Command, Envelope, Event, InvalidArgument
from schemas.ids import uuid7
from schemas.registry import message
from services.replay.reading import Recorded

MAX_WITHOUT_ALL = 100
"""A re-drive of more messages than this also needs `--all`: a selection that large is rarely what was meant."""


@message("replay.redriven")
class Redriven(Event):
    """An operator re-drove messages with `strata replay redrive --execute` (journaled, never published)."""

    operator: str = Field(min_length=1, description="Who re-drove (the CLI's user, or --operator).")
    reason: str = Field(default="", description="Why, as the operator said.")
    commands: tuple[UUID, ...] = Field(default=(), description="The commands sent again (their original ids).")
    sent_as: tuple[UUID, ...] = Field(default=(), description="The new message ids they were sent under, in order.")
    dead_letters: tuple[UUID, ...] = Field(default=(), description="The dead letters sent back to their queue.")


class Kind(StrEnum):
    """How a message is re-driven."""

    COMMAND = "command"
    DEAD_LETTER = "dead letter"


@dataclass(frozen=True, slots=True)
class Planned:
    """One message of a re-drive: how it goes, with which key, to which queues."""

    original: Recorded
    kind: Kind
    routing_key: str
    queues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """What a re-drive would send, and what of the selection it leaves out (events are facts: never re-driven)."""

    planned: list[Planned]
    skipped: list[Recorded]


def plan(
    selected: Sequence[Recorded],
    *,
    dead_letters: dict[UUID, str],
    bindings: Sequence[tuple[str, str]],
    namespace: str,
) -> Plan:
    """Plan a re-drive of `selected`. `dead_letters` maps a dead letter's id to its origin queue; `bindings` are the
    deployed (queue, command pattern) pairs that say where a command goes."""
    topology = Topology(namespace)
    planned: list[Planned] = []
    skipped: list[Recorded] = []
    for recorded in selected:
        if recorded.message_id in dead_letters:
            origin = dead_letters[recorded.message_id]
            planned.append(Planned(recorded, Kind.DEAD_LETTER, recorded.type, (origin,)))
        elif isinstance(recorded.message, Command):
            key = recorded.message.routing_key()
            queues = tuple(topology.queue(queue) for queue, pattern in bindings if topic_matches(pattern, key))
            if not queues and key.startswith("agent."):
                queues = (f"{namespace}.{'.'.join(key.split('.')[:3])} (an agent's own queue)",)
            planned.append(Planned(recorded, Kind.COMMAND, key, queues))
        else:
            skipped.append(recorded)
    return Plan(planned, skipped)


def deployed_bindings() -> list[tuple[str, str]]:
    """(queue, command pattern) of every declared daemon: where a command is routed (`strata topology apply`)."""
    from services.daemons import every_daemon  # the daemons' declarations, read only when a re-drive is planned

    return [
        (queue.name, binding.routing_key)
        for daemon in every_daemon()
        for queue in daemon.queues
        for binding in queue.bindings()
        if binding.exchange == "commands"
    ]


def check_size(chosen: Plan, *, everything: bool) -> None:
    """Refuse a large re-drive unless the operator said `--all`, and an empty one always."""
    if not chosen.planned:
        raise InvalidArgument("nothing to re-drive: the selection holds no command and no dead letter", field="filter")
    if len(chosen.planned) > MAX_WITHOUT_ALL and not everything:
        raise InvalidArgument(
            f"{len(chosen.planned)} messages would be re-driven (more than {MAX_WITHOUT_ALL}); "
            "narrow the selection or add --all",
            field="all",
        )


async def journal_commands(
    pool: Pool, chosen: Plan, *, operator: str, reason: str, schema: str = DEFAULT_SCHEMA
) -> list[UUID]:
    """Send the plan's commands again through the outbox and journal the re-drive, in one transaction; return
    the new message ids (the relay of any running daemon publishes them)."""
    commands = [item.original for item in chosen.planned if item.kind is Kind.COMMAND]
    dead = [item.original.message_id for item in chosen.planned if item.kind is Kind.DEAD_LETTER]
    producer = f"replay@{operator}"
    units = PostgresUnitOfWorkFactory(pool, schema=schema, encode=encode)
    sent_as: list[UUID] = []
    async with units.begin("replay.redrive", None) as uow:
        assert uow is not None  # no incoming message: never a duplicate
        for original in commands:
            again = Envelope.wrap(original.envelope().payload, cause=original.envelope(), producer=producer)
            again = again.model_copy(update={"message_id": uuid7()})
            sent_as.append(again.message_id)
            uow.emit(again)
        record = Redriven(
            operator=operator,
            reason=reason,
            commands=tuple(original.message_id for original in commands),
            sent_as=tuple(sent_as),
            dead_letters=tuple(dead),
        )
        cause = (commands or [item.original for item in chosen.planned])[0].envelope()
        envelope = Envelope.wrap(record, cause=cause, producer=producer)
        await uow.connection.execute(journal_insert(schema, [(envelope, encode(envelope))]))
    return sent_as
