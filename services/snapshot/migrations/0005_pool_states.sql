-- The copy of each pool keeps its state (from the storage service's `pool.state.changed`) so that a pool in
-- maintenance takes no new snapshot operation; `state_at` is when the newest applied change happened (events may
-- arrive in any order; an older one changes nothing).
ALTER TABLE __SCHEMA__.pools ADD COLUMN IF NOT EXISTS state text NOT NULL DEFAULT 'Up';
ALTER TABLE __SCHEMA__.pools ADD COLUMN IF NOT EXISTS state_at timestamptz;
