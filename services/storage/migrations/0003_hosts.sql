-- The host registry: one row per host whose agent ever sent a heartbeat (schemas.hosts).
CREATE TABLE IF NOT EXISTS __SCHEMA__.hosts (
    host text PRIMARY KEY,
    cluster_id text NOT NULL,
    identity jsonb NOT NULL,
    interval_seconds double precision NOT NULL,
    vms jsonb NOT NULL DEFAULT '[]',
    sent_at timestamptz NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS hosts_cluster ON __SCHEMA__.hosts (cluster_id);
