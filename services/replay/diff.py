"""What a sandbox emitted against what was recorded: matching, missing, extra and changed messages, field by field.

Messages are paired by id first (a saga's commands have ids derived from its id, step and attempt, so the same code
sends the same ids), then by type and step in order. Ids and times that are generated are not differences: the
message ids of events, fencing tokens and times are not compared, and the ids and times a saga generated
(`ctx.uuid()`, `ctx.now()`) are mapped to the recorded ones before payloads are compared.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

JsonObject = dict[str, Any]  # payloads: JSON values of every kind


class Verdict(StrEnum):
    """How one message compares."""

    MATCHING = "matching"
    MISSING = "missing"  # recorded, not emitted by the sandbox
    EXTRA = "extra"  # emitted by the sandbox, not recorded
    CHANGED = "changed"  # both, with different payloads


@dataclass(frozen=True, slots=True)
class Comparable:
    """A message reduced to what is compared: type, step and payload (masked), and its id for pairing."""

    message_id: UUID
    type: str
    step: int | None
    payload: JsonObject


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs; `path` is dotted (`snapshots.1.volume_id`)."""

    path: str
    recorded: Any  # JSON values
    replayed: Any


@dataclass(frozen=True, slots=True)
class Difference:
    """One message's verdict, with the fields that changed."""

    verdict: Verdict
    type: str
    step: int | None
    changes: tuple[FieldChange, ...] = ()

    def as_json(self) -> JsonObject:
        """JSON for a report."""
        return {
            "verdict": self.verdict.value,
            "type": self.type,
            "step": self.step,
            "changes": [
                {"field": change.path, "recorded": change.recorded, "replayed": change.replayed}
                for change in self.changes
            ],
        }


@dataclass
class Diff:
    """Every message's verdict, in step order."""

    entries: list[Difference] = field(default_factory=list)

    @property
    def same(self) -> bool:
        """True when every message matches."""
        return all(entry.verdict is Verdict.MATCHING for entry in self.entries)

    def count(self, verdict: Verdict) -> int:
        """How many messages got `verdict`."""
        return sum(1 for entry in self.entries if entry.verdict is verdict)

    @property
    def first_divergent_step(self) -> int | None:
        """The lowest step at which a message is missing, extra or changed."""
        steps = [entry.step for entry in self.entries if entry.verdict is not Verdict.MATCHING]
        known = [step for step in steps if step is not None]
        return min(known) if known else None


def substitute(value: Any, generated: dict[str, str]) -> Any:  # JSON of any shape
    """`value` with every string that the sandbox generated replaced by what the recording generated there."""
    if isinstance(value, dict):
        return {key: substitute(item, generated) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, generated) for item in value]
    if isinstance(value, str):
        return generated.get(value, value)
    return value


def field_changes(recorded: Any, replayed: Any, path: str = "") -> list[FieldChange]:  # JSON of any shape
    """The fields in which two JSON values differ, depth first."""
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        changes: list[FieldChange] = []
        for key in sorted(set(recorded) | set(replayed)):
            inner = f"{path}.{key}" if path else str(key)
            changes += field_changes(recorded.get(key), replayed.get(key), inner)
        return changes
    if isinstance(recorded, list) and isinstance(replayed, list) and len(recorded) == len(replayed):
        changes = []
        for index, (left, right) in enumerate(zip(recorded, replayed, strict=True)):
            changes += field_changes(left, right, f"{path}.{index}" if path else str(index))
        return changes
    return [] if recorded == replayed else [FieldChange(path or "(payload)", recorded, replayed)]


def compare(recorded: list[Comparable], replayed: list[Comparable]) -> Diff:
    """Pair `recorded` and `replayed` messages and judge each pair and each leftover."""
    pairs: list[tuple[Comparable | None, Comparable | None]] = []
    by_id = {message.message_id: message for message in replayed}
    unpaired_recorded: list[Comparable] = []
    for message in recorded:
        twin = by_id.pop(message.message_id, None)
        if twin is None:
            unpaired_recorded.append(message)
        else:
            pairs.append((message, twin))
    waiting: dict[tuple[str, int | None], list[Comparable]] = defaultdict(list)
    for message in replayed:
        if message.message_id in by_id:
            waiting[(message.type, message.step)].append(message)
    for message in unpaired_recorded:
        candidates = waiting.get((message.type, message.step))
        pairs.append((message, candidates.pop(0) if candidates else None))
    pairs += [(None, message) for candidates in waiting.values() for message in candidates]
    entries = [_judge(left, right) for left, right in pairs]
    entries.sort(key=lambda entry: (entry.step if entry.step is not None else 1 << 30, entry.type))
    return Diff(entries)


def _judge(recorded: Comparable | None, replayed: Comparable | None) -> Difference:
    if recorded is None:
        assert replayed is not None
        return Difference(Verdict.EXTRA, replayed.type, replayed.step)
    if replayed is None:
        return Difference(Verdict.MISSING, recorded.type, recorded.step)
    changes = field_changes(recorded.payload, replayed.payload)
    if recorded.type != replayed.type:
        changes.insert(0, FieldChange("(type)", recorded.type, replayed.type))
    return Difference(Verdict.CHANGED if changes else Verdict.MATCHING, recorded.type, recorded.step, tuple(changes))
