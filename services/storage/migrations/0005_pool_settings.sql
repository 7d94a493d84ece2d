-- A pool's settings the storage service shows and decides with: its configuration with the secrets masked (the
-- agents keep it sealed; this copy is for `strata pool show`), its own capacity thresholds (NULL: the deployment's),
-- and the update waiting for an agent to check new configuration fields (one at a time per pool).
ALTER TABLE __SCHEMA__.pools ADD COLUMN IF NOT EXISTS masked_config jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE __SCHEMA__.pools ADD COLUMN IF NOT EXISTS thresholds jsonb;
ALTER TABLE __SCHEMA__.pools ADD COLUMN IF NOT EXISTS pending_update jsonb;
