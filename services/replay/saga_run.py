"""One saga's run in the sandbox (`sandbox.Sandbox`): what its code emits, the replies due to it (recorded, or
answered by the sandbox's data plane), and the clock the replay moves."""

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sagas.records import SagaInstance
from sagas.work import saga_id_for
from schemas import Command, Envelope
from services.replay.data_plane import DataPlane, path_twins
from services.replay.reading import Recorded, masked_payload


@dataclass(frozen=True)
class ExportIndex:
    """An export's messages by what the replay looks them up by."""

    replies: dict[UUID, list[Recorded]]
    """Messages by the message that caused them."""
    by_saga: dict[UUID, list[Recorded]]
    starts: dict[UUID, Recorded]
    """The command that started each saga (a saga's id derives from its start command's)."""
    known: set[UUID]

    @classmethod
    def of(cls, messages: list[Recorded]) -> "ExportIndex":
        replies: dict[UUID, list[Recorded]] = defaultdict(list)
        by_saga: dict[UUID, list[Recorded]] = defaultdict(list)
        starts: dict[UUID, Recorded] = {}
        for message in messages:
            if message.causation_id is not None:
                replies[message.causation_id].append(message)
            if message.saga_id is not None:
                by_saga[message.saga_id].append(message)
            if isinstance(message.message, Command):
                starts[saga_id_for(message.message_id)] = message
        return cls(replies, by_saga, starts, {message.message_id for message in messages})


@dataclass
class SagaRun:
    """One saga's replay: what it emitted, the recorded replies due to it, and why it stopped (if it did)."""

    instance: SagaInstance
    coordinator: str
    replies: dict[UUID, list[Recorded]]
    known: set[UUID]
    clock: "Clock"
    end: datetime
    plane: DataPlane | None = None
    emitted: list[Envelope] = field(default_factory=list)
    inbox: list[tuple[datetime, UUID, Envelope, datetime]] = field(default_factory=list)
    """Replies by when the coordinator took them, each with when it was sent (where the clock moves to)."""
    live: list[Envelope] = field(default_factory=list)
    """Commands for the sandbox's data plane, not yet run."""
    answered: list[Envelope] = field(default_factory=list)
    """What the sandbox's data plane answered (compared with `replaced`, the recorded answers)."""
    replaced: list[Recorded] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    stop: str = ""

    def take(self, envelope: Envelope) -> None:
        """The engine's `emit`: keep what it sends, queue the recorded replies to its commands (or the command for
        the sandbox's data plane)."""
        self.emitted.append(envelope)
        if not isinstance(envelope.payload, Command) or self.stop:
            return
        if self.plane is not None and self.plane.takes(envelope):
            self.live.append(envelope)  # answered by this code, recorded or not
            return
        if envelope.message_id not in self.known:
            step = f" at step {envelope.step}" if envelope.step is not None else ""
            self.stop = f"the code sends {envelope.type}{step}, which the recording does not have"
        for reply in self._recorded_replies(envelope):
            heapq.heappush(self.inbox, (self._handled_at(reply), reply.message_id, reply.envelope(), reply.occurred_at))

    def _recorded_replies(self, command: Envelope) -> list[Recorded]:
        replies = self.replies.get(command.message_id, [])
        return [reply for reply in replies if reply.saga_id == self.instance.saga_id and reply.step is not None]

    async def run_live(self, plane: DataPlane) -> None:
        """Run the next data-plane command; queue its answers in place of the recorded ones (those stand if its pool
        stays outside: a plugin that does not open on a directory)."""
        command = self.live.pop(0)
        answers, recorded = await plane.answer(command), self._recorded_replies(command)
        if not answers:
            self.take_recorded(command)
            return
        self.replaced += recorded
        when = min((self._handled_at(reply) for reply in recorded), default=self.clock.now)
        sent = min((reply.occurred_at for reply in recorded), default=self.clock.now)
        for answer in answers:
            self.answered.append(answer)
            heapq.heappush(self.inbox, (when, answer.message_id, answer, sent))
            for reply in recorded:
                if reply.type == answer.type:
                    self.paths.update(path_twins(masked_payload(answer.payload), reply.payload(), str(plane.root)))

    def take_recorded(self, command: Envelope) -> None:
        """Queue the recorded replies to `command` (stopping there if the recording does not have it)."""
        self.emitted.remove(command)
        plane, self.plane = self.plane, None
        try:
            self.take(command)
        finally:
            self.plane = plane

    def _handled_at(self, reply: Recorded) -> datetime:
        """When the coordinator took `reply` in the recording: when it first sent something because of it, else
        (it caused nothing) when it was sent. Replies are delivered in that order, the order they were handled."""
        effects = [m.occurred_at for m in self.replies.get(reply.message_id, []) if m.producer == self.coordinator]
        return min(effects, default=reply.occurred_at)


class Clock:
    """The sandbox's time, moved by the replay."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
