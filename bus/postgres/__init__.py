"""Outbox, inbox and journal on PostgreSQL (asyncpg): effectively-once handling and the record of every message.

- `migrate(connection, schema)` creates and upgrades the tables (schema `bus` by default).
- `PostgresUnitOfWorkFactory` runs one handler per transaction with its inbox row and its outbox rows.
- `OutboxRelay` publishes the outbox through a `Transport` with confirms and marks rows sent.
- `PostgresJournal` answers questions about what happened (by correlation id, saga id, type, time).
"""

from bus.postgres.journal import JournalEntry, JournalQuery, PostgresJournal
from bus.postgres.migrate import DEFAULT_SCHEMA, migrate
from bus.postgres.pool import create_pool
from bus.postgres.records import route_by_kind
from bus.postgres.relay import OutboxRelay, PassResult, RelaySettings
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
