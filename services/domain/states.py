"""A small table-driven state machine: (state, event) -> next state, anything else refused with a clear error."""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from schemas.errors import FailedPrecondition

S = TypeVar("S", bound=StrEnum)
E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True)
class StateMachine(Generic[S, E]):
    """The legal transitions of one kind of object (`pool`, `volume`, `snapshot`).

    Attributes:
        kind: What the object is called in error messages.
        transitions: For each state, the events it accepts and the state each one leads to.
    """

    kind: str
    transitions: Mapping[S, Mapping[E, S]]

    def next_state(self, object_id: object, current: S, event: E) -> S:
        """Return the state `event` leads to from `current`, or raise FailedPrecondition naming all three."""
        allowed = self.transitions.get(current, {})
        if event in allowed:
            return allowed[event]
        hint = f"it accepts {', '.join(allowed)}" if allowed else f"{current} is final"
        raise FailedPrecondition(
            f"{self.kind} {object_id} is {current}: {event} is not allowed ({hint})", field="state"
        )

    def allows(self, current: S, event: E) -> bool:
        """Tell whether `event` is legal in `current`."""
        return event in self.transitions.get(current, {})

    def events_from(self, current: S) -> tuple[E, ...]:
        """The events `current` accepts, in table order."""
        return tuple(self.transitions.get(current, {}))

    def is_final(self, state: S) -> bool:
        """Tell whether no event leads out of `state`."""
        return not self.transitions.get(state)
