"""The relays running in this process, so that a unit of work wakes its own relay without a NOTIFY.

A NOTIFY is not free: PostgreSQL runs it as a transaction of its own (with an id, so a commit record flushed to the
WAL), takes its notification lock, and signals every listening backend, which passes the notification to every
LISTEN connection. A relay in the same process on the same pool and schema needs none of that: the unit of work wakes
it directly once its COMMIT returned, when the rows are visible. A unit of work with no such relay (a CLI, a process
whose relay is stopped) still sends NOTIFY, which wakes the relays of other processes. Relays of other processes are
not woken by a local wake: the local relay publishes the rows at once, and their poll is the safety net as before.
"""

from collections.abc import Callable

Wake = Callable[[], None]

# (id of the pool, schema) -> the wake-up callbacks of the running relays. A relay holds its pool while it is
# registered, so the pool's id cannot be reused by another pool meanwhile.
_relays: dict[tuple[int, str], list[Wake]] = {}


def register(pool: object, schema: str, wake: Wake) -> None:
    """Note a running relay of `pool` and `schema`; `wake` is called after each commit that wrote outbox rows."""
    _relays.setdefault((id(pool), schema), []).append(wake)


def unregister(pool: object, schema: str, wake: Wake) -> None:
    """Forget a relay (stopping or stopped); no-op if it was not registered."""
    key = (id(pool), schema)
    wakes = _relays.get(key)
    if wakes is None:
        return
    if wake in wakes:
        wakes.remove(wake)
    if not wakes:
        del _relays[key]


def local_relays(pool: object, schema: str) -> list[Wake]:
    """The wake-up callbacks of the relays running in this process for `pool` and `schema` (a copy)."""
    return list(_relays.get((id(pool), schema), ()))
