"""`PostgresUnitOfWorkFactory`: one PostgreSQL transaction per handled message.

Order inside the transaction: the inbox row (consumer, message_id) first, so that a duplicate is known before the
handler runs (a concurrent duplicate waits on the row lock and then sees the conflict); then the handler's own
state change through `uow.connection`; then, at commit, what it emitted goes to the outbox and the journal, and the
incoming message to the journal, in one statement. Any exception rolls all of it back.
"""

import asyncpg

from bus.ports import UnitOfWork, WireMessage
from bus.postgres.errors import is_driver_error, translate
from bus.postgres.migrate import DEFAULT_SCHEMA, validate_schema
from bus.postgres.pool import Pool, PoolConnection
from bus.postgres.records import (
    Encode,
    Outgoing,
    Route,
    journal_arrays,
    journal_insert,
    outbox_and_journal_insert,
    outbox_arrays,
    route_by_kind,
)
from schemas import Envelope, InvalidArgument


class PostgresUnitOfWork:
    """The open transaction of one handler: its connection, and the envelopes it emitted so far."""

    def __init__(self, connection: PoolConnection, encode: Encode, route: Route) -> None:
        self._connection = connection
        self._encode = encode
        self._route = route
        self.emitted: list[Outgoing] = []

    @property
    def connection(self) -> PoolConnection:
        """The transaction's connection; the service's repositories run their statements on it."""
        return self._connection

    def emit(self, envelope: Envelope) -> None:
        """Queue `envelope` for the outbox; it is written at commit and published by the relay after it."""
        exchange, routing_key = self._route(envelope)
        self.emitted.append(Outgoing(envelope, self._encode(envelope), exchange, routing_key))


class PostgresUnitOfWorkContext:
    """`async with factory.begin(consumer, incoming) as uow:` — None as `uow` means a duplicate: skip it."""

    def __init__(self, factory: "PostgresUnitOfWorkFactory", consumer: str, incoming: Envelope | None) -> None:
        self._factory = factory
        self._consumer = consumer
        self._incoming = incoming
        self._connection: PoolConnection | None = None
        self._transaction: asyncpg.transaction.Transaction | None = None
        self._unit: PostgresUnitOfWork | None = None

    async def __aenter__(self) -> UnitOfWork | None:
        factory = self._factory
        try:
            self._connection = await factory.pool.acquire()
            self._transaction = self._connection.transaction()
            await self._transaction.start()
            if self._incoming is not None:
                status = await self._connection.execute(
                    f"INSERT INTO {factory.schema}.inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    self._consumer,
                    self._incoming.message_id,
                )
                if status.endswith(" 0"):
                    await self._finish(commit=False)
                    return None
        except BaseException as error:
            await self._finish(commit=False)
            if is_driver_error(error):
                raise translate(error) from None
            raise
        self._unit = PostgresUnitOfWork(self._connection, factory.encode, factory.route)
        return self._unit

    async def __aexit__(self, *exc_info: object) -> None:
        exc = exc_info[1] if len(exc_info) > 1 and isinstance(exc_info[1], BaseException) else None
        if self._unit is None:
            return  # a duplicate: already rolled back in __aenter__
        if exc is not None:
            await self._finish(commit=False)
            if is_driver_error(exc):
                # A repository's statement failed on our connection: the caller sees strata's error, not asyncpg's.
                raise translate(exc) from None
            return
        try:
            await self._write_messages(self._unit.emitted)
            await self._finish(commit=True)
        except BaseException as error:
            await self._finish(commit=False)
            if is_driver_error(error):
                raise translate(error) from None
            raise

    async def _write_messages(self, emitted: list[Outgoing]) -> None:
        assert self._connection is not None
        schema = self._factory.schema
        journaled: list[tuple[Envelope, WireMessage]] = [(item.envelope, item.wire) for item in emitted]
        if self._incoming is not None:
            journaled.append((self._incoming, self._factory.encode(self._incoming)))
        if emitted:
            await self._connection.execute(
                outbox_and_journal_insert(schema), *outbox_arrays(emitted), *journal_arrays(journaled)
            )
        elif journaled:
            await self._connection.execute(journal_insert(schema), *journal_arrays(journaled))

    async def _finish(self, *, commit: bool) -> None:
        """Commit or roll back, and give the connection back to the pool whatever happens."""
        connection, transaction = self._connection, self._transaction
        self._connection = self._transaction = None
        try:
            if transaction is not None and commit:
                await transaction.commit()
            elif transaction is not None and connection is not None and not connection.is_closed():
                await _rollback_quietly(transaction)
        finally:
            if connection is not None:
                await self._factory.pool.release(connection)


async def _rollback_quietly(transaction: asyncpg.transaction.Transaction) -> None:
    # Rolling back follows another failure, which is the one worth raising; a connection that cannot even roll
    # back is discarded by the pool on release, and the server rolls back the transaction when it drops.
    try:
        await transaction.rollback()
    except Exception as error:
        if not is_driver_error(error):
            raise


class PostgresUnitOfWorkFactory:
    """Opens units of work on a pool; the bus tables live in `schema` (migrated with `bus.postgres.migrate`)."""

    def __init__(
        self,
        pool: Pool,
        *,
        encode: Encode,
        route: Route = route_by_kind,
        schema: str = DEFAULT_SCHEMA,
    ) -> None:
        self.pool = pool
        self.encode = encode
        self.route = route
        self.schema = validate_schema(schema)

    def begin(self, consumer: str, incoming: Envelope | None) -> PostgresUnitOfWorkContext:
        """Open a unit of work for `consumer`; with `incoming`, it records the inbox row first."""
        if not consumer:
            raise InvalidArgument("a unit of work needs the consumer's name (its inbox key)", field="consumer")
        return PostgresUnitOfWorkContext(self, consumer, incoming)
