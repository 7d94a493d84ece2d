"""The bus schema's migrations: numbered SQL files, applied in order by `bus.postgres.migrate`."""
