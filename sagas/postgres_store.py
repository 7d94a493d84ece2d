"""`PostgresSagaStore`: the saga tables in PostgreSQL (schema `sagas` by default), through asyncpg.

It opens the sessions: a locking one (`sagas.postgres_session`, its locks in `sagas.postgres_locks`) in a unit of
work's transaction or in one of its own, and the coordinator's optimistic one (`sagas.postgres_optimistic`) in a
unit not begun yet. Driver errors leave as strata's errors.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import UUID

from bus.ports import UnitOfWork
from bus.postgres.errors import translated_errors
from bus.postgres.migrate import validate_schema
from bus.postgres.pool import Pool
from bus.postgres.unit_of_work import PostgresUnitOfWork
from sagas.postgres_optimistic import OptimisticSagaSession, SagaCache
from sagas.postgres_session import PostgresSagaSession
from sagas.postgres_units import SagaUnitOfWork

DEFAULT_SCHEMA = "sagas"


class PostgresSagaStore:
    """The saga store on a pool; run `migrate` once before use (daemons do it at start)."""

    def __init__(self, pool: Pool, *, schema: str = DEFAULT_SCHEMA) -> None:
        self.pool = pool
        self.schema = validate_schema(schema)

    async def next_timer_at(self) -> datetime | None:
        """When the earliest timer is due, None if there is none (one statement, no transaction)."""
        with translated_errors():
            due: datetime | None = await self.pool.fetchval(f"SELECT min(due_at) FROM {self.schema}.timers")
        return due

    @asynccontextmanager
    async def optimistic_session(
        self, uow: SagaUnitOfWork, cache: SagaCache | None = None, cause: UUID | None = None
    ) -> AsyncIterator[OptimisticSagaSession]:
        """A session in `uow` before it has begun, for a message caused by `cause`: see `OptimisticSagaSession`."""
        with translated_errors():
            yield OptimisticSagaSession(uow, self.schema, cache, cause)

    @asynccontextmanager
    async def session(self, uow: UnitOfWork | None = None) -> AsyncIterator[PostgresSagaSession]:
        """A session in `uow`'s transaction, or in one of its own committed at exit."""
        with translated_errors():
            if uow is not None:
                defer = uow.defer if isinstance(uow, PostgresUnitOfWork) else None
                yield PostgresSagaSession(uow.connection, self.schema, defer)
                return
            async with self.pool.acquire() as connection, connection.transaction():
                yield PostgresSagaSession(connection, self.schema)
