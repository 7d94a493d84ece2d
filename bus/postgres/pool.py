"""The connection pool the bus tables are reached through, with connection failures translated."""

from typing import TYPE_CHECKING

import asyncpg

from bus.postgres.errors import is_driver_error, translated_errors

# asyncpg's classes are generic only in its stubs; at run time they cannot be subscripted.
if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]
    Pool = asyncpg.Pool[asyncpg.Record]
    PoolConnection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:
    Connection = asyncpg.Connection
    Pool = asyncpg.Pool
    PoolConnection = asyncpg.pool.PoolConnectionProxy


async def create_pool(
    database_url: str, *, min_size: int = 1, max_size: int = 10, reset_sessions: bool = False
) -> Pool:
    """Open a pool on `database_url`; raise `Transient` if the server cannot be reached.

    By default a released connection is not reset (asyncpg's `RESET ALL; UNLISTEN *; ...` costs a round trip per
    transaction, a sixth of a handler's). An open transaction is still rolled back on release. Code that uses these
    connections must therefore keep no session state: `SET LOCAL` rather than `SET`, `pg_advisory_xact_lock` rather
    than `pg_advisory_lock`, and LISTEN on a connection of its own. Pass `reset_sessions=True` for code that cannot.
    """
    with translated_errors():
        if reset_sessions:
            return await asyncpg.create_pool(database_url, min_size=min_size, max_size=max_size)
        return await asyncpg.create_pool(database_url, min_size=min_size, max_size=max_size, reset=_keep_session)


async def _keep_session(connection: Connection) -> None:
    """Pool reset hook that does nothing beyond asyncpg's own rollback of an open transaction."""


async def rollback_quietly(connection: PoolConnection) -> None:
    """Roll back `connection`'s open transaction after another failure, the one worth raising: a driver error here is
    dropped (the pool discards a broken connection, which makes the server roll back)."""
    try:
        if not connection.is_closed() and connection.is_in_transaction():
            await connection.execute("ROLLBACK")
    except Exception as error:
        if not is_driver_error(error):
            raise
