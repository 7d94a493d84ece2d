"""Outbox, inbox and journal on PostgreSQL (asyncpg): effectively-once handling and the record of every message.

- `create_pool(url)` opens the pool; `migrate(connection, schema)` creates and upgrades the tables (schema `bus`).
- `PostgresUnitOfWorkFactory` runs one handler per transaction with its inbox row, its outbox rows and the journal.
- `OutboxRelay` publishes the outbox through a `Transport` with confirms, marks rows sent, and keeps the tables
  trimmed (sent rows and old inbox rows; the journal is history and stays).
- `PostgresJournal` answers questions about what happened (by correlation id, saga id, type, time).

A daemon's bootstrap wires them:

    pool = await create_pool(settings.database_url)
    async with pool.acquire() as connection:
        await migrate(connection)
    units = PostgresUnitOfWorkFactory(pool)
    relay = OutboxRelay(pool, transport, database_url=settings.database_url)
    await relay.start()
    consumer = Consumer(transport, units, name="storage", handlers=HANDLERS)
"""

from bus.postgres.journal import JournalEntry, JournalQuery, PostgresJournal
from bus.postgres.migrate import DEFAULT_SCHEMA, migrate
from bus.postgres.pool import create_pool
from bus.postgres.records import route_by_kind
from bus.postgres.relay import OutboxRelay
from bus.postgres.relay_settings import PassResult, RelaySettings
from bus.postgres.unit_of_work import PostgresUnitOfWork, PostgresUnitOfWorkFactory

__all__ = [
    "DEFAULT_SCHEMA",
    "JournalEntry",
    "JournalQuery",
    "OutboxRelay",
    "PassResult",
    "PostgresJournal",
    "PostgresUnitOfWork",
    "PostgresUnitOfWorkFactory",
    "RelaySettings",
    "create_pool",
    "migrate",
    "route_by_kind",
]
