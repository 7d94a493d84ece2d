-- What the snapshot service knows of others (from their events) and what it owns (snapshots, policies).
CREATE TABLE __SCHEMA__.pools (
    pool_id uuid PRIMARY KEY,
    plugin text NOT NULL,
    scope text NOT NULL,
    cluster_id text,
    host text
);

CREATE TABLE __SCHEMA__.volumes (
    volume_id uuid PRIMARY KEY,
    pool_id uuid NOT NULL,
    vm_id uuid,
    size_bytes bigint NOT NULL,
    state text NOT NULL,
    state_at timestamptz NOT NULL,
    -- The snapshot the live volume is layered on (the last one taken or reverted to): a delta's parent.
    base_snapshot_id uuid
);
CREATE INDEX ON __SCHEMA__.volumes (vm_id);

CREATE TABLE __SCHEMA__.vm_power (
    vm_id uuid PRIMARY KEY,
    host text NOT NULL,
    power_state text NOT NULL,
    seen_at timestamptz NOT NULL
);

CREATE TABLE __SCHEMA__.snapshots (
    snapshot_id uuid PRIMARY KEY,
    volume_id uuid NOT NULL,
    pool_id uuid NOT NULL,
    name text NOT NULL,
    kind text NOT NULL,
    parent_id uuid,
    state text NOT NULL,
    policy_id uuid,
    vm_snapshot_id uuid,
    size_bytes bigint NOT NULL DEFAULT 0,
    physical_size_bytes bigint NOT NULL DEFAULT 0,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON __SCHEMA__.snapshots (volume_id, created_at);
CREATE INDEX ON __SCHEMA__.snapshots (policy_id, created_at) WHERE policy_id IS NOT NULL;

-- A request waiting for an agent: who asked (to answer a saga step) and what the agent was told to do.
CREATE TABLE __SCHEMA__.operations (
    agent_message_id uuid PRIMARY KEY,
    kind text NOT NULL,
    snapshot_id uuid NOT NULL,
    volume_id uuid NOT NULL,
    request jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON __SCHEMA__.operations (kind, snapshot_id, volume_id);

CREATE TABLE __SCHEMA__.policies (
    policy_id uuid PRIMARY KEY,
    volume_id uuid NOT NULL,
    interval_type text NOT NULL,
    schedule text NOT NULL,
    timezone text NOT NULL,
    max_snaps integer NOT NULL,
    -- The scheduler's source of truth: claimed with FOR UPDATE SKIP LOCKED, moved on in the same transaction.
    next_run_at timestamptz NOT NULL,
    last_run_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON __SCHEMA__.policies (next_run_at);

CREATE TABLE __SCHEMA__.vm_snapshots (
    vm_snapshot_id uuid PRIMARY KEY,
    vm_id uuid NOT NULL,
    name text NOT NULL,
    state text NOT NULL,
    request jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
