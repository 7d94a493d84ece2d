"""`PostgresUnitOfWorkFactory`: one PostgreSQL transaction per handled message.

Order inside the transaction: the inbox row (consumer, message_id) first, so that a duplicate is known before the
handler runs (a concurrent duplicate waits on the row lock and then sees the conflict); then the handler's own
state change through `uow.connection`; then what it emitted goes to the outbox and the journal, and the incoming
message to the journal, in the same simple query as COMMIT, followed by a NOTIFY that wakes the relays (or, when a
relay runs in this process on the same pool, a direct wake-up of it instead: see `wake`). Any exception rolls all
of it back.

Round trips are what a handler's transaction costs (see `literals`), so BEGIN travels with the inbox row and
COMMIT with the outbox and journal rows: the transaction is managed with SQL, not with asyncpg's `transaction()`.
Handlers therefore must not open `connection.transaction()` on `uow.connection`; SQL `SAVEPOINT` works.

A lazy unit (`begin(..., lazy=True)`, for a handler marked `bus.ports.deferred_writes`) sends nothing before the
handler runs: at its end, BEGIN, an inbox insert that a duplicate fails, the deferred writes, the outbox and journal
rows and COMMIT are one simple query, one round trip. A duplicate fails it with a unique violation on the inbox:
the unit rolls back and reports `duplicate`, and nothing the handler wrote or emitted is kept.
"""

import re

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
from bus.postgres.wake import local_relays
from schemas import Envelope, InvalidArgument
from schemas.errors import FailedPrecondition

_CONSUMER_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,200}")
# Sessions (pool, backend pid, schema) known to hold the statements of `prepare_statements`.
_prepared_sessions: set[tuple[int, int, str]] = set()
_PREPARED_SESSIONS_KEPT = 10_000


class PostgresUnitOfWork:
    """The open transaction of one handler: its connection, and the envelopes it emitted so far."""

    def __init__(self, connection: PoolConnection, encode: Encode, route: Route, *, lazy: bool = False) -> None:
        self._connection = connection
        self._encode = encode
        self._route = route
        self._lazy = lazy
        self.emitted: list[Outgoing] = []
        self.deferred: list[str] = []

    @property
    def connection(self) -> PoolConnection:
        """The transaction's connection; the service's repositories run their statements on it."""
        if self._lazy:
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


class PostgresUnitOfWorkContext:
    """`async with factory.begin(consumer, incoming) as uow:` — None as `uow` means a duplicate: skip it."""

    def __init__(
        self, factory: "PostgresUnitOfWorkFactory", consumer: str, incoming: Envelope | None, *, lazy: bool = False
    ) -> None:
        self._factory = factory
        self._consumer = consumer
        self._incoming = incoming
        self._lazy = lazy and incoming is not None
        self._connection: PoolConnection | None = None
        self._unit: PostgresUnitOfWork | None = None
        self.duplicate = False

    async def __aenter__(self) -> UnitOfWork | None:
        factory = self._factory
        if self._lazy:
            self._connection = await factory.pool.acquire()
            self._unit = PostgresUnitOfWork(self._connection, factory.encode, factory.route, lazy=True)
            return self._unit
        try:
            self._connection = await self._factory.pool.acquire()
            if self._incoming is None:
                await self._connection.execute("BEGIN")
            elif await self._record_inbox(self._connection, self._incoming) == 0:
                self.duplicate = True
                await self._end("ROLLBACK")
                return None
        except BaseException as error:
            await self._end("ROLLBACK")
            if is_driver_error(error):
                raise translate(error) from None
            raise
        self._unit = PostgresUnitOfWork(self._connection, self._factory.encode, self._factory.route)
        return self._unit

    async def _record_inbox(self, connection: PoolConnection, incoming: Envelope) -> int:
        """BEGIN and the inbox row through the prepared insert, prepared in the same round trip on a connection that
        has not got it yet; return how many rows were inserted (0: a duplicate)."""
        inbox = f"BEGIN; {inbox_execute(self._factory.schema, self._consumer, incoming.message_id)}"
        status = await self._execute_prepared(connection, inbox)
        return int(status.rsplit(" ", 1)[1])

    async def _execute_prepared(self, connection: PoolConnection, statement: str) -> str:
        """Run `statement`, which uses the statements of `prepare_statements`, preceded by their PREPARE on a
        session that has not got them yet (the same round trip); return its status."""
        schema = self._factory.schema
        session = (id(self._factory.pool), connection.get_server_pid(), schema)
        known = session in _prepared_sessions
        try:
            status = await connection.execute(statement if known else f"{prepare_statements(schema)}; {statement}")
        except (asyncpg.InvalidSQLStatementNameError, asyncpg.DuplicatePreparedStatementError):
            # What this process knew of the session was wrong (a reused backend pid, a DEALLOCATE, a forgotten
            # session): prepare what the session lacks, then go on. Rare, so one more round trip is fine.
            await rollback_quietly(connection)
            statements = prepared_statements(schema)
            held = {row["name"] for row in await connection.fetch("SELECT name FROM pg_prepared_statements")}
            # (PostgreSQL cuts names at 63 bytes, and a schema's name may be up to 63 long.)
            missing = [text for name, text in statements.items() if name[:63] not in held]
            status = await connection.execute("; ".join([*missing, statement]))
            known = False
        if not known:
            if len(_prepared_sessions) >= _PREPARED_SESSIONS_KEPT:
                # Sessions of closed connections pile up over a long life: forget them all (a live one that is
                # forgotten costs one refused PREPARE, above).
                _prepared_sessions.clear()
            _prepared_sessions.add(session)
        return status

    async def __aexit__(self, *exc_info: object) -> None:
        exc = exc_info[1] if len(exc_info) > 1 and isinstance(exc_info[1], BaseException) else None
        if self._unit is None:
            return  # a duplicate: already rolled back in __aenter__
        if exc is not None:
            await self._end(None if self._lazy else "ROLLBACK")  # a lazy unit has not begun
            if is_driver_error(exc):
                # A repository's statement failed on our connection: the caller sees strata's error, not asyncpg's.
                raise translate(exc) from None
            return
        emitted = self._unit.emitted
        # A relay of this process on the same pool is woken directly after the commit; others by NOTIFY (see `wake`).
        wakes = local_relays(self._factory.pool, self._factory.schema) if emitted else []
        try:
            commit = self._commit_statement(emitted, self._unit.deferred, notify=not wakes)
            if self._lazy:
                if not await self._commit_at_once(commit):
                    return  # a duplicate: nothing was kept, and nobody is woken
            else:
                await self._end(commit)
        except BaseException as error:
            await self._end("ROLLBACK")
            if is_driver_error(error):
                raise translate(error) from None
            raise
        for wake in wakes:
            wake()

    async def _commit_at_once(self, commit: str) -> bool:
        """A lazy unit's whole transaction in one round trip; False (rolled back) if the message proved a duplicate."""
        connection = self._connection
        assert connection is not None
        assert self._incoming is not None
        inbox = inbox_execute(self._factory.schema, self._consumer, self._incoming.message_id, duplicate_fails=True)
        try:
            await self._execute_prepared(connection, f"BEGIN; {inbox}; {commit}")
        except asyncpg.UniqueViolationError as error:
            if not is_inbox_duplicate(error, self._factory.schema):
                raise
            self.duplicate = True
            await self._end("ROLLBACK")
            return False
        await self._end(None)
        return True

    def _commit_statement(self, emitted: list[Outgoing], deferred: list[str], *, notify: bool) -> str:
        factory = self._factory
        codec = factory.encode is codec_encode
        incoming = None
        if self._incoming is not None:
            # Only its headers are journaled with it: the codec's are known without encoding the payload again.
            headers = headers_of(self._incoming) if codec else factory.encode(self._incoming).headers
            incoming = (self._incoming, headers)
        return commit_statement(
            factory.schema,
            deferred=deferred,
            emitted=emitted,
            incoming=incoming,
            bodies_are_payloads=codec,
            notify=notify,
            prepared=incoming is not None,  # the inbox row went through them in this session
        )

    async def _end(self, statement: str | None) -> None:
        """Run the statement that ends the transaction (None: it has ended or never began), and give the connection
        back to the pool whatever happens.

        A failed COMMIT statement raises after rolling back; a failed ROLLBACK does not raise (it follows another
        failure, the one worth raising, and the pool discards a broken connection, which makes the server roll back).
        """
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if statement is not None and not connection.is_closed():
                await connection.execute(statement)
        except Exception as error:
            if statement == "ROLLBACK" and is_driver_error(error):
                return
            await rollback_quietly(connection)
            raise
        finally:
            await self._factory.pool.release(connection)


class PostgresUnitOfWorkFactory:
    """Opens units of work on a pool; the bus tables live in `schema` (migrated with `bus.postgres.migrate`)."""

    def __init__(
        self, pool: Pool, *, encode: Encode = codec_encode, route: Route = route_by_kind, schema: str = DEFAULT_SCHEMA
    ) -> None:
        self.pool = pool
        self.encode = encode
        self.route = route
        self.schema = validate_schema(schema)

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
