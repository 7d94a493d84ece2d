"""The connection pool the bus tables are reached through, with connection failures translated."""

from typing import TYPE_CHECKING

import asyncpg

from bus.postgres.errors import translated_errors

# asyncpg's classes are generic only in its stubs; at run time they cannot be subscripted.
if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]
    Pool = asyncpg.Pool[asyncpg.Record]
    PoolConnection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:
    Connection = asyncpg.Connection
    Pool = asyncpg.Pool
    PoolConnection = asyncpg.pool.PoolConnectionProxy


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 10) -> Pool:
    """Open a pool on `database_url`; raise `Transient` if the server cannot be reached."""
    with translated_errors():
        return await asyncpg.create_pool(database_url, min_size=min_size, max_size=max_size)
