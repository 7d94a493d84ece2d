"""`PostgresUnitOfWorkFactory`: one PostgreSQL transaction per handled message.

Order inside the transaction: the inbox row (consumer, message_id) first, so that a duplicate is known before the
handler runs (a concurrent duplicate waits on the row lock and then sees the conflict); then the handler's own
state change through `uow.connection`; then what it emitted goes to the outbox and the journal, and the incoming
message to the journal, in the same simple query as COMMIT, followed by a NOTIFY that wakes the relays. Any
exception rolls all of it back.

Round trips are what a handler's transaction costs (see `literals`), so BEGIN travels with the inbox row and
COMMIT with the outbox and journal rows: the transaction is managed with SQL, not with asyncpg's `transaction()`.
Handlers therefore must not open `connection.transaction()` on `uow.connection`; SQL `SAVEPOINT` works.
"""

import re

from bus.codec import encode as codec_encode
from bus.ports import UnitOfWork
from bus.postgres.errors import is_driver_error, translate
from bus.postgres.literals import literal, text_literal
from bus.postgres.migrate import DEFAULT_SCHEMA, validate_schema
from bus.postgres.pool import Pool, PoolConnection
from bus.postgres.records import (
    Encode,
    Outgoing,
    Route,
    journal_insert,
    notify_channel,
    outbox_insert,
    route_by_kind,
)
from schemas import Envelope, InvalidArgument

_CONSUMER_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,200}")


class PostgresUnitOfWork:
    """The open transaction of one handler: its connection, and the envelopes it emitted so far."""

    def __init__(self, connection: PoolConnection, encode: Encode, route: Route) -> None:
        self._connection = connection
        self._encode = encode
        self._route = route
        self.emitted: list[Outgoing] = []
        self.deferred: list[str] = []

    @property
    def connection(self) -> PoolConnection:
        """The transaction's connection; the service's repositories run their statements on it."""
        return self._connection

    def emit(self, envelope: Envelope) -> None:
        """Queue `envelope` for the outbox; it is written at commit and published by the relay after it."""
        exchange, routing_key = self._route(envelope)
        self.emitted.append(Outgoing(envelope, self._encode(envelope), exchange, routing_key))

    def defer(self, statement: str) -> None:
        """Run `statement` (no parameters: values written with `bus.postgres.literals`) in the commit's round trip.

        For a handler's last write, which nothing in the transaction reads afterwards: it saves a round trip, and a
        failure still rolls back everything (it is reported when the unit of work ends).
        """
        self.deferred.append(statement)


class PostgresUnitOfWorkContext:
    """`async with factory.begin(consumer, incoming) as uow:` — None as `uow` means a duplicate: skip it."""

    def __init__(self, factory: "PostgresUnitOfWorkFactory", consumer: str, incoming: Envelope | None) -> None:
        self._factory = factory
        self._consumer = consumer
        self._incoming = incoming
        self._connection: PoolConnection | None = None
        self._unit: PostgresUnitOfWork | None = None

    async def __aenter__(self) -> UnitOfWork | None:
        schema = self._factory.schema
        try:
            self._connection = await self._factory.pool.acquire()
            if self._incoming is None:
                await self._connection.execute("BEGIN")
            else:
                status = await self._connection.execute(
                    f"BEGIN; INSERT INTO {schema}.inbox (consumer, message_id) "
                    f"VALUES ({text_literal(self._consumer)}, {literal(self._incoming.message_id)}) "
                    "ON CONFLICT DO NOTHING"
                )
                if status.endswith(" 0"):
                    await self._end("ROLLBACK")
                    return None
        except BaseException as error:
            await self._end("ROLLBACK")
            if is_driver_error(error):
                raise translate(error) from None
            raise
        self._unit = PostgresUnitOfWork(self._connection, self._factory.encode, self._factory.route)
        return self._unit

    async def __aexit__(self, *exc_info: object) -> None:
        exc = exc_info[1] if len(exc_info) > 1 and isinstance(exc_info[1], BaseException) else None
        if self._unit is None:
            return  # a duplicate: already rolled back in __aenter__
        if exc is not None:
            await self._end("ROLLBACK")
            if is_driver_error(exc):
                # A repository's statement failed on our connection: the caller sees strata's error, not asyncpg's.
                raise translate(exc) from None
            return
        try:
            await self._end(self._commit_statement(self._unit.emitted, self._unit.deferred))
        except BaseException as error:
            await self._end("ROLLBACK")
            if is_driver_error(error):
                raise translate(error) from None
            raise

    def _commit_statement(self, emitted: list[Outgoing], deferred: list[str]) -> str:
        schema = self._factory.schema
        journaled = [(item.envelope, item.wire) for item in emitted]
        if self._incoming is not None:
            journaled.append((self._incoming, self._factory.encode(self._incoming)))
        statements = [*deferred, outbox_insert(schema, emitted)] if emitted else list(deferred)
        if journaled:
            statements.append(journal_insert(schema, journaled))
        statements.append("COMMIT")
        if emitted:
            # After COMMIT, in a transaction of its own that writes nothing: a NOTIFY inside the writing transaction
            # would hold PostgreSQL's notification lock through the WAL flush and serialize every commit.
            statements.append(f"NOTIFY {notify_channel(schema)}")
        return "; ".join(statements)

    async def _end(self, statement: str) -> None:
        """Run the statement that ends the transaction, and give the connection back to the pool whatever happens.

        A failed COMMIT statement raises after rolling back; a failed ROLLBACK does not raise (it follows another
        failure, the one worth raising, and the pool discards a broken connection, which makes the server roll back).
        """
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if not connection.is_closed():
                await connection.execute(statement)
        except Exception as error:
            if statement == "ROLLBACK" and is_driver_error(error):
                return
            await _rollback_quietly(connection)
            raise
        finally:
            await self._factory.pool.release(connection)


async def _rollback_quietly(connection: PoolConnection) -> None:
    try:
        if not connection.is_closed() and connection.is_in_transaction():
            await connection.execute("ROLLBACK")
    except Exception as error:
        if not is_driver_error(error):
            raise


class PostgresUnitOfWorkFactory:
    """Opens units of work on a pool; the bus tables live in `schema` (migrated with `bus.postgres.migrate`)."""

    def __init__(
        self, pool: Pool, *, encode: Encode = codec_encode, route: Route = route_by_kind, schema: str = DEFAULT_SCHEMA
    ) -> None:
        self.pool = pool
        self.encode = encode
        self.route = route
        self.schema = validate_schema(schema)

    def begin(self, consumer: str, incoming: Envelope | None) -> PostgresUnitOfWorkContext:
        """Open a unit of work for `consumer`; with `incoming`, it records the inbox row first."""
        if not _CONSUMER_NAME.fullmatch(consumer):
            raise InvalidArgument(
                f"consumer name {consumer!r} must be 1-200 letters, digits or . _ : @ -", field="consumer"
            )
        return PostgresUnitOfWorkContext(self, consumer, incoming)
