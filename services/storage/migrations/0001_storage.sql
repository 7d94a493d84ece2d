-- The storage service's state. A pool's plugin configuration is NOT kept here: it travels once, to the agents
-- (agent.pool.attach), which keep what they need to reopen the pool.
CREATE TABLE IF NOT EXISTS __SCHEMA__.pools (
    pool_id uuid PRIMARY KEY,
    name text NOT NULL,
    plugin text NOT NULL,
    state text NOT NULL,
    scope text NOT NULL,
    zone_id uuid NOT NULL,
    cluster_id text,
    host text,
    hypervisors text[] NOT NULL DEFAULT '{}',
    tags text[] NOT NULL DEFAULT '{}',
    thin_provisioned boolean NOT NULL DEFAULT false,
    capacity_bytes bigint NOT NULL DEFAULT 0,
    used_bytes bigint NOT NULL DEFAULT 0,
    stats_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS __SCHEMA__.volumes (
    volume_id uuid PRIMARY KEY,
    name text NOT NULL,
    state text NOT NULL,
    size_bytes bigint NOT NULL,
    requested_size_bytes bigint,
    zone_id uuid NOT NULL,
    pool_id uuid REFERENCES __SCHEMA__.pools (pool_id),
    vm_id uuid,
    locator text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS volumes_by_pool ON __SCHEMA__.volumes (pool_id, state);
CREATE INDEX IF NOT EXISTS volumes_by_vm ON __SCHEMA__.volumes (vm_id);

-- The highest lock fencing token seen per resource (`volume:<id>`), for the commands sagas send.
CREATE TABLE IF NOT EXISTS __SCHEMA__.fencing (
    resource text PRIMARY KEY,
    token bigint NOT NULL
);
