-- A pool's configuration is kept sealed with the deployment key (services/runtime/sealing.py); `config` keeps it
-- with its secrets masked, for an operator's look. Rows from before this version keep their clear config until the
-- pool is attached again.
ALTER TABLE __SCHEMA__.pools ADD COLUMN IF NOT EXISTS sealed_config text;
