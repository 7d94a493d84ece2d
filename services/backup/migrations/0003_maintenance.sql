-- Repository maintenance as jobs (services/backup/maintenance.py): when each repository's next garbage collection
-- is due (NULL: one interval after the repository was added), and when a verify of each backup was last asked for (so that it is asked once per turn).
ALTER TABLE __SCHEMA__.repositories ADD COLUMN IF NOT EXISTS next_gc_at timestamptz;
ALTER TABLE __SCHEMA__.backups ADD COLUMN IF NOT EXISTS verify_requested_at timestamptz;
