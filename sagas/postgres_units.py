"""`SagaUnitOfWorkFactory`: the coordinator's units of work, which begin only when they must.

The bus's unit of work costs a round trip to begin (BEGIN and the inbox row) before the handler runs, and one to
commit. Most coordinator messages need no statement in between that a transaction must hold: a start command
writes a new saga, and a reply reads the saga once and writes it back. So a unit of this factory begins lazily:

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

Exactly-once is the bus's: the inbox row commits with the saga's state and the outbox rows, or nothing does.
Without an incoming message (the timer loop) a unit begins at once.
"""

from collections.abc import Awaitable, Callable

import asyncpg

from bus.codec import encode as codec_encode
from bus.codec import headers_of
from bus.ports import UnitOfWork, UnitOfWorkContext
from bus.postgres import PostgresUnitOfWork, PostgresUnitOfWorkFactory, route_by_kind
from bus.postgres.errors import is_driver_error, translate
from bus.postgres.literals import literal, text_literal
from bus.postgres.migrate import DEFAULT_SCHEMA
from bus.postgres.pool import Pool, PoolConnection, rollback_quietly
from bus.postgres.records import Encode, Route, commit_statement
from bus.postgres.unit_of_work import is_inbox_duplicate
from bus.postgres.wake import local_relays
from schemas import Envelope

_SERIALIZATION_FAILURE = "40001"  # expect_revision: the saga changed since it was read


class SagaUnitOfWork(PostgresUnitOfWork):
    """A unit of work that has not begun until `begin()` (or until it commits in one round trip)."""

    def __init__(self, connection: PoolConnection, encode: Encode, route: Route, inbox: str) -> None:
        super().__init__(connection, encode, route)
        self.inbox_row = inbox
        """The INSERT of the inbox row, without ON CONFLICT (a duplicate fails the one-round-trip commit)."""
        self.begun = False
        self.duplicate = False
        self.redo: Callable[[UnitOfWork], Awaitable[None]] | None = None
        """Handles the message again in a begun unit, when the one-round-trip commit finds the saga changed."""
        self._committed: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the unit committed (never if it rolls back, or is handled again by `redo`)."""
        self._committed.append(callback)

    def committed(self) -> None:
        """The unit committed: run the `after_commit` callbacks."""
        callbacks, self._committed = self._committed, []
        for callback in callbacks:
            callback()

    async def begin(self) -> bool:
        """Begin with the inbox row now (one round trip); False if the message is a duplicate (the unit is over)."""
        if self.begun:
            return not self.duplicate
        self.reset()
        status = await self.connection.execute(f"BEGIN; {self.inbox_row} ON CONFLICT DO NOTHING")
        self.begun = True
        if status.endswith(" 0"):
            self.duplicate = True
            await self.connection.execute("ROLLBACK")
            return False
        return True

    def reset(self) -> None:
        """Forget what was emitted and deferred (before the message is handled again)."""
        self.emitted.clear()
        self.deferred.clear()
        self.redo = None
        self._committed = []


class SagaUnitOfWorkContext:
    """`async with factory.begin(consumer, incoming) as uow:`; None is never returned (duplicates end at commit)."""

    def __init__(self, factory: "SagaUnitOfWorkFactory", consumer: str, incoming: Envelope) -> None:
        self._factory = factory
        self._consumer = consumer
        self._incoming = incoming
        self._unit: SagaUnitOfWork | None = None
        self.duplicate = False

    async def __aenter__(self) -> UnitOfWork | None:
        factory = self._factory
        connection = await factory.pool.acquire()
        inbox = (
            f"INSERT INTO {factory.schema}.inbox (consumer, message_id) "
            f"VALUES ({text_literal(self._consumer)}, {literal(self._incoming.message_id)})"
        )
        self._unit = SagaUnitOfWork(connection, factory.encode, factory.route, inbox)
        return self._unit

    async def __aexit__(self, *exc_info: object) -> None:
        unit, self._unit = self._unit, None
        if unit is None:
            return
        exc = exc_info[1] if len(exc_info) > 1 and isinstance(exc_info[1], BaseException) else None
        try:
            if unit.duplicate:
                self.duplicate = True
                return
            if exc is not None:
                await rollback_quietly(unit.connection)
                if is_driver_error(exc):
                    raise translate(exc) from None
                return
            if unit.begun:
                await self._commit(unit)
            else:
                self.duplicate = not await self._commit_at_once(unit)
        except BaseException as error:
            await rollback_quietly(unit.connection)
            if is_driver_error(error):
                raise translate(error) from None
            raise
        finally:
            await self._factory.pool.release(unit.connection)

    async def _commit_at_once(self, unit: SagaUnitOfWork) -> bool:
        """Begin, record the inbox row and commit in one round trip; False if the message proved a duplicate.

        A saga changed since it was read (or anything else `_is_redone` names) is handled again the locking way.
        """
        try:
            await self._commit(unit, f"BEGIN; {unit.inbox_row}; ")
            return True
        except asyncpg.PostgresError as error:
            await rollback_quietly(unit.connection)
            if is_inbox_duplicate(error, self._factory.schema):
                return False
            if unit.redo is None or not _is_redone(error):
                raise translate(error) from None
            redo = unit.redo
        if not await unit.begin():
            return False
        await redo(unit)
        await self._commit(unit)
        return True

    async def _commit(self, unit: SagaUnitOfWork, begin: str = "") -> None:
        """Run the commit statement (after `begin`, in the same round trip); then wake this process's relay."""
        if unit.duplicate:
            return
        factory = self._factory
        # A relay of this process on the same pool is woken directly after the commit; others by NOTIFY (bus wake).
        wakes = local_relays(factory.pool, factory.schema) if unit.emitted else []
        codec = factory.encode is codec_encode
        headers = headers_of(self._incoming) if codec else factory.encode(self._incoming).headers
        statement = commit_statement(
            factory.schema,
            deferred=unit.deferred,
            emitted=unit.emitted,
            incoming=(self._incoming, headers),
            bodies_are_payloads=codec,
            notify=not wakes,
        )
        await unit.connection.execute(begin + statement)
        for wake in wakes:
            wake()
        unit.committed()


class SagaUnitOfWorkFactory(PostgresUnitOfWorkFactory):
    """The bus's unit of work factory, with lazily begun units for incoming messages."""

    def __init__(
        self, pool: Pool, *, encode: Encode = codec_encode, route: Route = route_by_kind, schema: str = DEFAULT_SCHEMA
    ) -> None:
        super().__init__(pool, encode=encode, route=route, schema=schema)

    @classmethod
    def like(cls, units: PostgresUnitOfWorkFactory) -> "SagaUnitOfWorkFactory":
        """The same pool, codec, routes and schema as `units`."""
        return cls(units.pool, encode=units.encode, route=units.route, schema=units.schema)

    def begin(  # type: ignore[override]
        self, consumer: str, incoming: Envelope | None, *, lazy: bool = False
    ) -> UnitOfWorkContext:
        """A lazily begun unit for `incoming` (whatever `lazy` says); without one, the bus's unit (begun at once)."""
        context = super().begin(consumer, incoming)  # checks the consumer name
        if incoming is None:
            return context
        return SagaUnitOfWorkContext(self, consumer, incoming)


def _is_redone(error: asyncpg.PostgresError) -> bool:
    """The saga changed since it was read, or a start finds its saga created: handle it again, the locking way."""
    return error.sqlstate == _SERIALIZATION_FAILURE or isinstance(error, asyncpg.UniqueViolationError)
