-- Bumped each time a pool's configuration is replaced (`agent.pool.reconfigure`): an agent whose open driver was
-- opened with an older one reopens it before its next operation on the pool.
ALTER TABLE __SCHEMA__.pools ADD COLUMN IF NOT EXISTS config_version bigint NOT NULL DEFAULT 0;
