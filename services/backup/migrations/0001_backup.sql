-- The backup service's state: repositories (their configuration sealed with the deployment key), backups, and
-- the pools and volumes it routes agent commands by (from the storage service's events).
CREATE TABLE __SCHEMA__.repositories (
    repository_id uuid PRIMARY KEY,
    name text NOT NULL UNIQUE,
    plugin text NOT NULL,
    sealed_config text NOT NULL,
    masked_config jsonb NOT NULL,
    zone_id uuid NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE __SCHEMA__.pools (
    pool_id uuid PRIMARY KEY,
    plugin text NOT NULL,
    scope text NOT NULL,
    cluster_id text,
    host text
);

CREATE TABLE __SCHEMA__.volumes (
    volume_id uuid PRIMARY KEY,
    pool_id uuid NOT NULL
);

CREATE TABLE __SCHEMA__.backups (
    backup_id uuid PRIMARY KEY,
    repository_id uuid NOT NULL REFERENCES __SCHEMA__.repositories,
    volume_id uuid NOT NULL,
    snapshot_id uuid NOT NULL,
    pool_id uuid NOT NULL,
    schedule_id uuid,
    kind text NOT NULL,
    parent_id uuid,
    series integer NOT NULL,
    -- The backup saga took the snapshot and keeps it only as the next backup's changed-block anchor.
    anchor boolean NOT NULL DEFAULT false,
    -- Its snapshot starts a new chain: on success the older anchors of the volume are released.
    release_anchors boolean NOT NULL DEFAULT false,
    state text NOT NULL,
    size_bytes bigint NOT NULL DEFAULT 0,
    bytes_read bigint NOT NULL DEFAULT 0,
    bytes_written bigint NOT NULL DEFAULT 0,
    bytes_reused bigint NOT NULL DEFAULT 0,
    changed_blocks boolean NOT NULL DEFAULT false,
    note text,
    error text,
    verify_bad text[],
    verified_at timestamptz,
    created_at timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE INDEX ON __SCHEMA__.backups (volume_id, repository_id, created_at);

-- Requests waiting for an agent's answer: who asked (a saga's step, a user), keyed by the agent command's id.
CREATE TABLE __SCHEMA__.operations (
    agent_message_id uuid PRIMARY KEY,
    kind text NOT NULL,
    backup_id uuid NOT NULL,
    request jsonb NOT NULL
);
CREATE INDEX ON __SCHEMA__.operations (kind, backup_id);
