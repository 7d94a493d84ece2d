-- Backup schedules in CloudStack's formats, several per volume, each keeping its newest `max_backups`.
CREATE TABLE __SCHEMA__.schedules (
    schedule_id uuid PRIMARY KEY,
    volume_id uuid NOT NULL,
    repository_id uuid NOT NULL REFERENCES __SCHEMA__.repositories,
    interval_type text NOT NULL,
    schedule text NOT NULL,
    timezone text NOT NULL,
    max_backups integer NOT NULL,
    next_run_at timestamptz NOT NULL,
    last_run_at timestamptz,
    created_at timestamptz NOT NULL
);
CREATE INDEX ON __SCHEMA__.schedules (next_run_at);
CREATE INDEX ON __SCHEMA__.schedules (volume_id);
