"""A selection as a story: messages in causal order, who sent what to whom, how long each step took, retries,
compensations, failures, dead letters and operator actions; and the causal tree of one operation.

Causal order: a message comes after the message that caused it (its causation id), and otherwise in time order,
so parallel branches interleave as they happened while a reply never precedes its command even across clocks.
The receiver of a message is the service that acted on it (the producer of what it caused); a message nothing
followed has no known receiver. The saga records (the saga store's steps and events) add what the bus journal
cannot know: which commands were compensations, and what operators did.
"""

import heapq
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from sagas.records import SagaEvent, SagaInstance, StepKind, StepRecord
from schemas import Command
from services.replay.reading import Recorded

NOBODY = "(no reply)"
SUBSCRIBERS = "(subscribers)"  # an event that caused nothing journaled: whoever listens


class Mark(StrEnum):
    """What a timeline line stands for, beyond a plain message."""

    START = "start"
    COMMAND = "command"
    REPLY = "reply"
    EVENT = "event"
    RETRY = "retry"
    COMPENSATION = "compensation"
    FAILURE = "failure"
    DEAD_LETTER = "dead letter"
    OPERATOR = "operator"
    SAGA = "saga"


@dataclass(frozen=True, slots=True)
class SagaRecord:
    """What the saga store holds about one saga: its instance, its steps and its events."""

    instance: SagaInstance
    steps: list[StepRecord]
    events: list[SagaEvent]


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a timeline: a message (with its receivers and wait) or a saga event (operator action, end)."""

    at: datetime
    sender: str
    receivers: tuple[str, ...]
    what: str
    mark: Mark
    message: Recorded | None = None
    waited: timedelta | None = None
    """For a command: how long until its first answer (the step's duration)."""
    attempt: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # a saga event's detail: JSON values of any kind


def causal_order(messages: list[Recorded]) -> list[Recorded]:
    """`messages` with each after its cause (when both are present), otherwise oldest first."""
    by_id = {message.message_id: message for message in messages}
    children: dict[UUID, list[Recorded]] = defaultdict(list)
    ready: list[tuple[datetime, UUID, Recorded]] = []
    for message in messages:
        cause = message.causation_id
        if cause is not None and cause in by_id and cause != message.message_id:
            children[cause].append(message)
        else:
            ready.append((message.occurred_at, message.message_id, message))
    heapq.heapify(ready)
    ordered: list[Recorded] = []
    while ready:
        _, _, message = heapq.heappop(ready)
        ordered.append(message)
        for child in children.pop(message.message_id, []):
            heapq.heappush(ready, (child.occurred_at, child.message_id, child))
    for orphans in children.values():  # a cycle of causation ids (a corrupt journal): keep them, in time order
        ordered.extend(sorted(orphans, key=lambda message: (message.occurred_at, message.message_id)))
    return ordered


def timeline(
    messages: list[Recorded], sagas: Sequence[SagaRecord] = (), *, dead_letters: frozenset[UUID] = frozenset()
) -> list[Line]:
    """The lines of a timeline: every message in causal order, the sagas' operator actions and ends in time order."""
    ordered = causal_order(messages)
    answers: dict[UUID, list[Recorded]] = defaultdict(list)
    for message in ordered:
        if message.causation_id is not None:
            answers[message.causation_id].append(message)
    compensations = {
        (step.saga_id, step.seq) for saga in sagas for step in saga.steps if step.kind is StepKind.COMPENSATION
    }
    attempts: dict[tuple[UUID, int], int] = defaultdict(int)
    by_id = {message.message_id: message for message in ordered}
    lines: list[Line] = []
    for message in ordered:
        followers = answers.get(message.message_id, [])
        receivers = tuple(dict.fromkeys(follower.service for follower in followers)) or _answered_to(message, by_id)
        attempt = None
        if message.saga_id is not None and message.step is not None and isinstance(message.message, Command):
            attempts[(message.saga_id, message.step)] += 1
            attempt = attempts[(message.saga_id, message.step)]
        waited = followers[0].occurred_at - message.occurred_at if followers else None
        lines.append(
            Line(
                at=message.occurred_at,
                sender=message.service,
                receivers=receivers,
                what=f"{message.type}" + (f" (step {message.step})" if message.step is not None else ""),
                mark=_mark(message, attempt, compensations, dead_letters),
                message=message,
                waited=waited,
                attempt=attempt,
            )
        )
    coordinators = {
        message.saga_id: message.service
        for message in ordered
        if isinstance(message.message, Command) and message.saga_id
    }
    for saga in sagas:
        coordinator = coordinators.get(saga.instance.saga_id, "orchestrator")
        for event in saga.events:
            if event.kind.startswith("operator.") or event.kind in {"compensating", "compensated", "failed", "stuck"}:
                mark = Mark.OPERATOR if event.kind.startswith("operator.") else Mark.SAGA
                by = str(event.detail.get("by") or "operator") if mark is Mark.OPERATOR else coordinator
                what = f"{saga.instance.name} {event.kind}"
                what += f": {event.detail['reason']}" if event.detail.get("reason") else ""
                lines.append(Line(event.at, by, (coordinator,), what, mark, detail=event.detail))
    return _merge_in_time(lines)


def _answered_to(message: Recorded, by_id: dict[UUID, Recorded]) -> tuple[str, ...]:
    """Who took a message that caused nothing: a saga's reply goes back to the sender of the step it answers."""
    cause = by_id.get(message.causation_id) if message.causation_id is not None else None
    if cause is not None and message.step is not None and not isinstance(message.message, Command):
        return (cause.service,)
    return (NOBODY,) if isinstance(message.message, Command) else (SUBSCRIBERS,)


def _merge_in_time(lines: list[Line]) -> list[Line]:
    """Saga events go where their time puts them among the (causally ordered) messages."""
    messages = [line for line in lines if line.message is not None]
    others = sorted((line for line in lines if line.message is None), key=lambda line: line.at)
    merged: list[Line] = []
    for line in messages:
        while others and others[0].at < line.at:
            merged.append(others.pop(0))
        merged.append(line)
    return merged + others


def _mark(
    message: Recorded, attempt: int | None, compensations: set[tuple[UUID, int]], dead_letters: frozenset[UUID]
) -> Mark:
    in_saga = message.saga_id is not None and message.step is not None
    if message.message_id in dead_letters or message.type == "bus.command.undeliverable":
        mark = Mark.DEAD_LETTER
    elif message.type == "replay.redriven":
        mark = Mark.OPERATOR
    elif message.type == "saga.ended":
        mark = Mark.FAILURE if _ended_badly(message) else Mark.SAGA
    elif in_saga and (message.saga_id, message.step) in compensations:
        mark = Mark.COMPENSATION if isinstance(message.message, Command) else Mark.REPLY
    elif message.type.endswith(".failed"):
        mark = Mark.FAILURE
    elif attempt is not None:
        mark = Mark.RETRY if attempt > 1 else Mark.COMMAND
    elif message.causation_id is None:
        mark = Mark.START
    elif in_saga:
        mark = Mark.REPLY
    else:
        mark = Mark.COMMAND if isinstance(message.message, Command) else Mark.EVENT
    return mark


def _ended_badly(message: Recorded) -> bool:
    return message.payload().get("status") in {"FAILED", "STUCK", "COMPENSATED"}


@dataclass
class Node:
    """A message and the messages it caused."""

    message: Recorded
    children: list["Node"] = field(default_factory=list)


def causal_tree(messages: list[Recorded]) -> list[Node]:
    """The causation trees of `messages`: roots are messages whose cause is not among them, children in causal order."""
    nodes = {message.message_id: Node(message) for message in causal_order(messages)}
    roots: list[Node] = []
    for node in nodes.values():
        cause = node.message.causation_id
        parent = nodes.get(cause) if cause is not None and cause != node.message.message_id else None
        (parent.children if parent is not None else roots).append(node)
    return roots


def lifelines(lines: list[Line]) -> list[str]:
    """The services of a timeline, in the order they first appear (the sequence diagram's columns)."""
    seen: dict[str, None] = {}
    for line in lines:
        seen.setdefault(line.sender, None)
        for receiver in line.receivers:
            seen.setdefault(receiver, None)
    return list(seen)
