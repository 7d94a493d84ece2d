"""The agent's units of work: no database transaction stays open while a handler does its slow work.

A plugin call may take minutes (a qemu-img convert) or hang (a dead NFS mount). Were its transaction open meanwhile,
each slow command would hold a pooled connection, and a few of them would starve the outbox relay and every other
handler of the pool, so that finished work could not report back. So the agent's consumers get `StagedUnits`
instead of the bus's factory, and an agent command runs in three steps (DESIGN §10):

1. intent: in a short transaction of its own, the fencing check and the operation's row (`agent.operations`,
   running), committed before the work starts (`StagedUnit.transaction`);
2. the work, with no transaction and no connection held: what it reads or writes on `uow.connection` are single
   statements, each committed at once on a connection taken for that statement only;
3. the result: what the handler emitted and its deferred writes (the operation's row, done), with the inbox row, in
   the bus's own unit of work, opened only now.

The command id (the message id) is the idempotency key: a command whose result was recorded is acked as a duplicate
without running again (its operation row says done, committed with the inbox row); a redelivery of one that was
interrupted runs its (idempotent) plugin call again; and a redelivery that arrives while this process still runs the
first waits for it rather than doing the same work twice at once.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from bus.ports import UnitOfWork, UnitOfWorkFactory
from bus.postgres.errors import translated_errors
from bus.postgres.pool import Pool, PoolConnection
from schemas import Envelope
from schemas.errors import Unimplemented
from services.agent import repository


class StagedUnit:
    """A handler's unit of work that holds no transaction: intent, work and result each commit on their own."""

    def __init__(self, database: Pool | None, consumer: str) -> None:
        self.database = database
        self.consumer = consumer
        self.emitted: list[Envelope] = []
        self.deferred: list[tuple[str, tuple[Any, ...]]] = []

    @property
    def connection(self) -> Pool | None:
        """Where a handler's statements run outside the result's transaction: each one on its own, committed at once
        (the pool; None without a database)."""
        return self.database

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PoolConnection]:
        """A short transaction of its own, committed when the block ends (for the intent, before the work)."""
        if self.database is None:
            raise Unimplemented("this agent has no database: it cannot record an operation or check fencing")
        with translated_errors():
            async with self.database.acquire() as connection, connection.transaction():
                yield connection

    def emit(self, envelope: Envelope) -> None:
        """Publish `envelope` with the result: it goes to the outbox in the result's transaction."""
        self.emitted.append(envelope)

    def defer(self, statement: str, *args: Any) -> None:  # asyncpg takes any parameter type
        """Run `statement` in the result's transaction, with the inbox row and what was emitted."""
        self.deferred.append((statement, args))


class _StagedContext:
    """`async with units.begin(consumer, incoming) as uow:` for the agent's consumers (see the module)."""

    def __init__(self, units: "StagedUnits", consumer: str, incoming: Envelope | None) -> None:
        self._units = units
        self._consumer = consumer
        self._incoming = incoming
        self._unit: StagedUnit | None = None
        self._key: tuple[str, UUID] | None = None
        self.duplicate = False

    async def __aenter__(self) -> StagedUnit | None:
        units, incoming = self._units, self._incoming
        if incoming is not None:
            key = (self._consumer, incoming.message_id)
            while (running := units.in_flight.get(key)) is not None:
                await running.wait()  # the same command, redelivered while this process still runs it
            units.in_flight[key] = asyncio.Event()
            self._key = key
            if units.database is not None and await repository.operation_finished(units.database, incoming.message_id):
                self.duplicate = True
                self._release()
                return None
        self._unit = StagedUnit(units.database, self._consumer)
        return self._unit

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if (exc_info and exc_info[0] is not None) or self._unit is None:
                return
            await self._record_result(self._unit)
        finally:
            self._release()

    async def _record_result(self, unit: StagedUnit) -> None:
        context = self._units.units.begin(self._consumer, self._incoming)
        async with context as result:
            if result is not None:
                await _apply(unit, result)
        self.duplicate = context.duplicate

    def _release(self) -> None:
        if self._key is not None:
            event = self._units.in_flight.pop(self._key, None)
            self._key = None
            if event is not None:
                event.set()


async def _finished(database: Pool, command_id: UUID) -> bool:
    with translated_errors():
        return await repository.operation_finished(database, command_id)


async def _apply(unit: StagedUnit, result: UnitOfWork) -> None:
    for statement, args in unit.deferred:
        await result.connection.execute(statement, *args)
    for envelope in unit.emitted:
        result.emit(envelope)


class StagedUnits:
    """The agent's unit-of-work factory: `units` (the bus's) records only the result; `database` (the pool of the
    same database, None on a bus without one) takes the intent and the statements run during the work."""

    def __init__(self, units: UnitOfWorkFactory, database: Pool | None) -> None:
        self.units = units
        self.database = database
        self.in_flight: dict[tuple[str, UUID], asyncio.Event] = {}

    def begin(self, consumer: str, incoming: Envelope | None, *, lazy: bool = False) -> _StagedContext:
        """Open a staged unit for `consumer` (`lazy` changes nothing: no transaction is open before the result)."""
        return _StagedContext(self, consumer, incoming)
