"""SQL migrations of the saga tables, applied in order by `sagas.postgres_migrate.migrate_sagas`."""
