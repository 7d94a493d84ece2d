"""`PostgresUnitOfWorkFactory`: one PostgreSQL transaction per handled message, and the one commit path of the bus.

Order inside the transaction: the inbox row (consumer, message_id) first, so that a duplicate is known before the
handler runs (a concurrent duplicate waits on the row lock and then sees the conflict); then the handler's own
state change through `uow.connection`; then what it emitted goes to the outbox and the journal, and the incoming
message to the journal, in the same simple query as COMMIT, followed by a NOTIFY that wakes the relays (or, when a
relay runs in this process on the same pool, a direct wake-up of it instead: see `wake` and the factory's `wakes`).
Any exception rolls all of it back.

Round trips are what a handler's transaction costs (see `literals`), so BEGIN travels with the inbox row and
COMMIT with the outbox and journal rows: the transaction is managed with SQL, not with asyncpg's `transaction()`.
Handlers therefore must not open `connection.transaction()` on `uow.connection`; SQL `SAVEPOINT` works.

A lazy unit sends nothing before the handler runs: at its end, BEGIN, an inbox insert that a duplicate fails, the
deferred writes, the outbox and journal rows and COMMIT are one simple query, one round trip. A duplicate fails it
with a unique violation on the inbox: the unit rolls back and reports `duplicate`, and nothing the handler wrote or
emitted is kept. Two kinds of handler use lazy units, through this one commit path:
- a handler marked `bus.ports.deferred_writes` (`begin(..., lazy=True)`): it reads nothing, so `uow.connection` is
  refused to it;
- the saga coordinator (`sagas.postgres_units`, a factory with `reads_before_begin`): it reads without a lock on
  `uow.connection` outside any transaction, defers its writes guarded by the saga's revision, and may `begin()` the
  unit when it needs a transaction after all. When the one-round-trip commit fails on a conflict (a serialization
  failure, a unique violation other than the inbox's) and the handler left a `redo`, the unit begins and `redo`
  handles the message again in it, the locking way.
"""

import re
from collections.abc import Awaitable, Callable

import asyncpg

from bus.codec import encode as codec_encode
from bus.codec import headers_of
from bus.ports import UnitOfWork
from bus.postgres.errors import is_driver_error, translate
from bus.postgres.literals import SqlValue, render
from bus.postgres.migrate import DEFAULT_SCHEMA, validate_schema
from bus.postgres.pool import Pool, PoolConnection, rollback_quietly
from bus.postgres.records import (
    Encode,
    Outgoing,
    Route,
    commit_statement,
    inbox_execute,
    prepare_statements,
    prepared_statements,
    route_by_kind,
)
from bus.postgres.wake import RelayWakes
from schemas import Envelope, InvalidArgument
from schemas.errors import FailedPrecondition

_CONSUMER_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,200}")
_PREPARED_SESSIONS_KEPT = 10_000
_SERIALIZATION_FAILURE = "40001"


class PreparedSessions:
    """The sessions (pool, backend pid, schema) known to hold the statements of `prepare_statements`.

    Owned by a factory (and shared by the factories made `like` it), not by the process: what a factory does not know
    costs one refused PREPARE on a session, which `execute_prepared` recovers from.
    """

    def __init__(self) -> None:
        self._known: set[tuple[int, int, str]] = set()

    async def execute(self, pool: Pool, schema: str, connection: PoolConnection, statement: str) -> str:
        """Run `statement`, which uses the statements of `prepare_statements`, preceded by their PREPARE on a
        session that has not got them yet (the same round trip); return its status."""
        session = (id(pool), connection.get_server_pid(), schema)
        known = session in self._known
        try:
            status = await connection.execute(statement if known else f"{prepare_statements(schema)}; {statement}")
        except (asyncpg.InvalidSQLStatementNameError, asyncpg.DuplicatePreparedStatementError):
            # What this factory knew of the session was wrong (a reused backend pid, a DEALLOCATE, a session that
            # another factory prepared): prepare what the session lacks, then go on. Rare: one more round trip.
            await rollback_quietly(connection)
            statements = prepared_statements(schema)
            held = {row["name"] for row in await connection.fetch("SELECT name FROM pg_prepared_statements")}
            # (PostgreSQL cuts names at 63 bytes, and a schema's name may be up to 63 long.)
            missing = [text for name, text in statements.items() if name[:63] not in held]
            status = await connection.execute("; ".join([*missing, statement]))
            known = False
        if not known:
            if len(self._known) >= _PREPARED_SESSIONS_KEPT:
                # Sessions of closed connections pile up over a long life: forget them all (a live one that is
                # forgotten costs one refused PREPARE, above).
                self._known.clear()
            self._known.add(session)
        return status


class PostgresUnitOfWork:
    """The transaction of one handler: its connection, what it emitted and deferred so far, and whether it began."""

    def __init__(
        self,
        context: "PostgresUnitOfWorkContext",
        connection: PoolConnection,
        *,
        begun: bool = True,
        reads_before_begin: bool = False,
    ) -> None:
        self._context = context
        self._connection = connection
        self._reads_before_begin = reads_before_begin
        factory = context.factory
        self._encode = factory.encode
        self._route = factory.route
        self.begun = begun
        """False for a lazy unit until `begin()` (or its one-round-trip commit)."""
        self.duplicate = False
        """True once `begin()` found the message handled before: the unit is over, nothing is kept."""
        self.emitted: list[Outgoing] = []
        self.deferred: list[str] = []
        self.redo: Callable[[UnitOfWork], Awaitable[None]] | None = None
        """Handles the message again in this unit, begun, when the one-round-trip commit fails on a conflict."""
        self._committed: list[Callable[[], None]] = []

    @property
    def connection(self) -> PoolConnection:
        """The transaction's connection; the service's repositories run their statements on it."""
        if not self.begun and not self._reads_before_begin:
            raise FailedPrecondition(
                "this handler is marked deferred_writes: its transaction begins at the commit, so it writes with "
                "uow.defer and cannot use uow.connection"
            )
        return self._connection

    def emit(self, envelope: Envelope) -> None:
        """Queue `envelope` for the outbox; it is written at commit and published by the relay after it."""
        exchange, routing_key = self._route(envelope)
        self.emitted.append(Outgoing(envelope, self._encode(envelope), exchange, routing_key))

    def defer(self, statement: str, *args: SqlValue) -> None:
        """Run `statement` in the commit's round trip, its placeholders `$1`... written as literals of `args`.

        For a handler's last write, which nothing in the transaction reads afterwards: it saves a round trip, and a
        failure still rolls back everything (it is reported when the unit of work ends). A placeholder or argument
        that does not match is refused here, in the handler.
        """
        self.deferred.append(render(statement, args) if args else statement)

    async def begin(self) -> bool:
        """Begin a lazy unit now, with its inbox row (one round trip); False if the message is a duplicate (the
        unit is over: nothing is kept). What was emitted or deferred before is forgotten."""
        if self.begun:
            return not self.duplicate
        self.reset()
        self.begun = True
        if not await self._context.record_inbox(self._connection):
            self.duplicate = True
            await self._connection.execute("ROLLBACK")
            return False
        return True

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the unit committed (never if it rolls back, nor if `redo` handles it again)."""
        self._committed.append(callback)

    def committed(self) -> None:
        """The unit committed: run the `after_commit` callbacks."""
        callbacks, self._committed = self._committed, []
        for callback in callbacks:
            callback()

    def reset(self) -> None:
        """Forget what was emitted and deferred (before the message is handled again)."""
        self.emitted.clear()
        self.deferred.clear()
        self.redo = None
        self._committed = []


class PostgresUnitOfWorkContext:
    """`async with factory.begin(consumer, incoming) as uow:` — None as `uow` means a duplicate: skip it."""

    def __init__(
        self, factory: "PostgresUnitOfWorkFactory", consumer: str, incoming: Envelope | None, *, lazy: bool = False
    ) -> None:
        self.factory = factory
        self._consumer = consumer
        self._incoming = incoming
        self._lazy = lazy and incoming is not None
        self._unit: PostgresUnitOfWork | None = None
        self.duplicate = False

    async def __aenter__(self) -> UnitOfWork | None:
        factory = self.factory
        connection = await factory.pool.acquire()
        if self._lazy:
            reads = factory.reads_before_begin
            self._unit = PostgresUnitOfWork(self, connection, begun=False, reads_before_begin=reads)
            return self._unit
        try:
            if self._incoming is None:
                await connection.execute("BEGIN")
            elif not await self.record_inbox(connection):
                self.duplicate = True
                await connection.execute("ROLLBACK")
                await factory.pool.release(connection)
                return None
        except BaseException as error:
            await rollback_quietly(connection)
            await factory.pool.release(connection)
            if is_driver_error(error):
                raise translate(error) from None
            raise
        self._unit = PostgresUnitOfWork(self, connection)
        return self._unit

    async def record_inbox(self, connection: PoolConnection) -> bool:
        """BEGIN and the inbox row through the prepared insert (prepared in the same round trip on a session that
        has not got it yet); False if the row exists (a duplicate)."""
        assert self._incoming is not None
        factory = self.factory
        inbox = f"BEGIN; {inbox_execute(factory.schema, self._consumer, self._incoming.message_id)}"
        status = await factory.prepared.execute(factory.pool, factory.schema, connection, inbox)
        return int(status.rsplit(" ", 1)[1]) > 0

    async def __aexit__(self, *exc_info: object) -> None:
        unit, self._unit = self._unit, None
        if unit is None:
            return  # a duplicate: already rolled back in __aenter__
        exc = exc_info[1] if len(exc_info) > 1 and isinstance(exc_info[1], BaseException) else None
        connection = unit._connection
        try:
            if unit.duplicate:
                self.duplicate = True  # found by `begin()`, which rolled back
            elif exc is not None:
                await rollback_quietly(connection)
                if is_driver_error(exc):
                    # A repository's statement failed on our connection: the caller sees strata's error, not asyncpg's.
                    raise translate(exc) from None
            elif unit.begun:
                await self._commit(unit)
            else:
                self.duplicate = not await self._commit_at_once(unit)
        except BaseException as error:
            await rollback_quietly(connection)
            if is_driver_error(error):
                raise translate(error) from None
            raise
        finally:
            await self.factory.pool.release(connection)

    async def _commit_at_once(self, unit: PostgresUnitOfWork) -> bool:
        """A lazy unit's whole transaction in one round trip; False (rolled back) if the message proved a duplicate.

        On a conflict, a unit with a `redo` begins and is handled again (see the module's docstring).
        """
        factory = self.factory
        assert self._incoming is not None
        inbox = inbox_execute(factory.schema, self._consumer, self._incoming.message_id, duplicate_fails=True)
        try:
            await self._commit(unit, begin=f"BEGIN; {inbox}; ")
            return True
        except asyncpg.PostgresError as error:
            await rollback_quietly(unit._connection)
            if is_inbox_duplicate(error, factory.schema):
                return False
            if unit.redo is None or not _is_conflict(error):
                raise
            redo = unit.redo
        if not await unit.begin():
            return False
        await redo(unit)
        if unit.duplicate:
            return False
        await self._commit(unit)
        return True

    async def _commit(self, unit: PostgresUnitOfWork, *, begin: str = "") -> None:
        """Run the statement that ends the unit (after `begin`, in the same round trip); then wake this process's
        relays and run the unit's `after_commit` callbacks."""
        factory = self.factory
        # A relay of this process on the same pool is woken directly after the commit; others by NOTIFY (see `wake`).
        wakes = factory.wakes.current() if unit.emitted else []
        codec = factory.encode is codec_encode
        incoming = None
        if self._incoming is not None:
            # Only its headers are journaled with it: the codec's are known without encoding the payload again.
            headers = headers_of(self._incoming) if codec else factory.encode(self._incoming).headers
            incoming = (self._incoming, headers)
        statement = begin + commit_statement(
            factory.schema,
            deferred=unit.deferred,
            emitted=unit.emitted,
            incoming=incoming,
            bodies_are_payloads=codec,
            notify=not wakes,
            prepared=incoming is not None,  # the inbox row goes, or went, through them in this session
        )
        if begin:
            await factory.prepared.execute(factory.pool, factory.schema, unit._connection, statement)
        else:
            # A begun unit's session holds the statements already (its inbox row went through them), and a retry
            # here could not replay the transaction's earlier statements.
            await unit._connection.execute(statement)
        for wake in wakes:
            wake()
        unit.committed()


class PostgresUnitOfWorkFactory:
    """Opens units of work on a pool; the bus tables live in `schema` (migrated with `bus.postgres.migrate`)."""

    reads_before_begin = False
    """True for a factory whose lazy units let the handler read on `uow.connection` before they begin."""

    def __init__(
        self,
        pool: Pool,
        *,
        encode: Encode = codec_encode,
        route: Route = route_by_kind,
        schema: str = DEFAULT_SCHEMA,
        prepared: PreparedSessions | None = None,
        wakes: RelayWakes | None = None,
    ) -> None:
        """`wakes`: the relays of this pool and schema that run in this process, woken after each commit instead of
        a NOTIFY (the bootstrap gives the same `RelayWakes` to its relays); by default none."""
        self.pool = pool
        self.encode = encode
        self.route = route
        self.schema = validate_schema(schema)
        self.prepared = prepared if prepared is not None else PreparedSessions()
        self.wakes = wakes if wakes is not None else RelayWakes()

    def begin(self, consumer: str, incoming: Envelope | None, *, lazy: bool = False) -> PostgresUnitOfWorkContext:
        """Open a unit of work for `consumer`; with `incoming`, it records the inbox row first (at the commit if
        `lazy`: see the module's docstring)."""
        if not _CONSUMER_NAME.fullmatch(consumer):
            raise InvalidArgument(
                f"consumer name {consumer!r} must be 1-200 letters, digits or . _ : @ -", field="consumer"
            )
        return PostgresUnitOfWorkContext(self, consumer, incoming, lazy=lazy)


def is_inbox_duplicate(error: asyncpg.PostgresError, schema: str) -> bool:
    """The inbox row exists: the message was handled before (or is being handled by another unit that won)."""
    return (
        isinstance(error, asyncpg.UniqueViolationError) and error.schema_name == schema and error.table_name == "inbox"
    )


def _is_conflict(error: asyncpg.PostgresError) -> bool:
    """What was read changed before the commit (a serialization failure), or a row to insert exists already."""
    return error.sqlstate == _SERIALIZATION_FAILURE or isinstance(error, asyncpg.UniqueViolationError)
