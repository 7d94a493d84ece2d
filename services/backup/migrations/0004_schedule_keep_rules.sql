-- A schedule's keep-* rules (KeepRules as JSON; NULL: its max_backups alone decide what its retention removes).
ALTER TABLE __SCHEMA__.schedules ADD COLUMN IF NOT EXISTS keep jsonb;
