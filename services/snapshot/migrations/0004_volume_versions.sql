-- The copy of each volume keeps the owner's version of what it holds: `version` for its state, `size_version` for
-- its size; an event older than them changes nothing (events may arrive in any order). A volume heard of before its
-- `volume.created` has no pool or size yet.
ALTER TABLE __SCHEMA__.volumes ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0;
ALTER TABLE __SCHEMA__.volumes ADD COLUMN IF NOT EXISTS size_version bigint NOT NULL DEFAULT 0;
ALTER TABLE __SCHEMA__.volumes ALTER COLUMN pool_id DROP NOT NULL;
ALTER TABLE __SCHEMA__.volumes ALTER COLUMN size_bytes DROP NOT NULL;
