-- A volume's version: incremented by every change, carried by its events (`entity_version`), so that read models
-- elsewhere apply only what is newer than what they hold. Volumes from before count from 0.
ALTER TABLE __SCHEMA__.volumes ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0;
