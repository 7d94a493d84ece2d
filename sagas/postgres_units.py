"""`SagaUnitOfWorkFactory`: the coordinator's units of work, which begin only when they must.

The bus's unit of work costs a round trip to begin (BEGIN and the inbox row) before the handler runs, and one to
commit. Most coordinator messages need no statement in between that a transaction must hold: a start command
writes a new saga, and a reply reads the saga once and writes it back. So a unit of this factory is one of the
bus's lazy units, whose handler may read before it begins (`bus.postgres.unit_of_work`, the one commit path):

- the coordinator reads the saga without a lock (one statement, no transaction), works on what it read, and
  defers its writes, each saga's guarded by `expect_revision` (the row lock, and a check that nobody wrote the saga
  since it was read);
- the commit is then one round trip: BEGIN, the inbox row (a duplicate fails it), the deferred statements, the
  outbox and journal rows, COMMIT, NOTIFY (or the bus's direct wake-up of this process's relay instead);
- if the commit finds the message already handled (its inbox row exists), it rolls back and the message is a
  duplicate; if it finds the saga changed (serialization failure) or already created (a repeated start), it
  rolls back and the handler's `redo` runs the message again the locking way, in a unit begun first;
- a handler that needs the transaction earlier (locks, timers, compensation reads) calls `begin()`, which is the
  bus's BEGIN and inbox row, and everything goes on as in `bus.postgres.unit_of_work`.

Exactly-once is the bus's: the inbox row commits with the saga's state and the outbox rows, or nothing does. A
duplicate runs the handler (it is known at the commit or at `begin()`) and keeps nothing, as the unit-of-work
contract allows for lazy units (`bus.ports.UnitOfWorkContext.duplicate`). Without an incoming message (the timer
loop) a unit begins at once.
"""

from bus.postgres import PostgresUnitOfWork, PostgresUnitOfWorkFactory
from bus.postgres.unit_of_work import PostgresUnitOfWorkContext
from schemas import Envelope

SagaUnitOfWork = PostgresUnitOfWork
"""A unit of this factory: `begun` is False until `begin()` (or its one-round-trip commit)."""


class SagaUnitOfWorkFactory(PostgresUnitOfWorkFactory):
    """The bus's unit of work factory, with lazily begun units for incoming messages that may read before."""

    reads_before_begin = True

    @classmethod
    def like(cls, units: PostgresUnitOfWorkFactory) -> "SagaUnitOfWorkFactory":
        """The same pool, codec, routes, schema, prepared sessions and relays to wake as `units`."""
        return cls(
            units.pool,
            encode=units.encode,
            route=units.route,
            schema=units.schema,
            prepared=units.prepared,
            wakes=units.wakes,
        )

    def begin(self, consumer: str, incoming: Envelope | None, *, lazy: bool = False) -> PostgresUnitOfWorkContext:
        """A lazily begun unit for `incoming` (whatever `lazy` says); without one, the bus's unit (begun at once)."""
        return super().begin(consumer, incoming, lazy=True)
