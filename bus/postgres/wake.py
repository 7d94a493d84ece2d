"""`RelayWakes`: the outbox relays running in this process on one pool and schema, so that a unit of work wakes them
without a NOTIFY.

A NOTIFY is not free: PostgreSQL runs it as a transaction of its own (with an id, so a commit record flushed to the
WAL), takes its notification lock, and signals every listening backend, which passes the notification to every
LISTEN connection. A relay in the same process on the same pool and schema needs none of that: the unit of work wakes
it directly once its COMMIT returned, when the rows are visible. A unit of work with no such relay (a CLI, a process
whose relay is stopped) still sends NOTIFY, which wakes the relays of other processes. Relays of other processes are
not woken by a local wake: the local relay publishes the rows at once, and their poll is the safety net as before.

The bootstrap that builds a pool's unit-of-work factory and its relays makes one `RelayWakes` and gives it to both
(`services.runtime.runner`); a factory or relay given none has one of its own, which no relay or unit shares.
"""

from collections.abc import Callable

Wake = Callable[[], None]


class RelayWakes:
    """The wake-up callbacks of the relays running now on one pool and schema."""

    def __init__(self) -> None:
        self._wakes: list[Wake] = []

    def register(self, wake: Wake) -> None:
        """Note a running relay; `wake` is called after each commit that wrote outbox rows."""
        self._wakes.append(wake)

    def unregister(self, wake: Wake) -> None:
        """Forget a relay (stopping or stopped); no-op if it was not registered."""
        if wake in self._wakes:
            self._wakes.remove(wake)

    def current(self) -> list[Wake]:
        """The callbacks of the relays running now (a copy)."""
        return list(self._wakes)
