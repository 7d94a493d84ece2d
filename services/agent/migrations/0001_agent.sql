-- The agents' own state, shared by every agent (cluster-scoped commands may reach any agent of a cluster).
-- pools: what each agent needs to reopen a pool's driver after a restart or on another host of the cluster.
-- fencing: the highest lock fencing token seen per resource; a command carrying an older one is refused.
CREATE TABLE IF NOT EXISTS __SCHEMA__.pools (
    pool_id uuid PRIMARY KEY,
    plugin text NOT NULL,
    config jsonb NOT NULL,
    attached_by text NOT NULL,
    attached_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS __SCHEMA__.fencing (
    resource text PRIMARY KEY,
    token bigint NOT NULL
);
