-- The saga tables: instances, the step journal, timers, leased locks with their line, and the audit trail.
-- __SCHEMA__ is replaced by the migrator with a validated schema name.

CREATE TABLE __SCHEMA__.instances (
    saga_id uuid PRIMARY KEY,
    name text NOT NULL,
    version integer NOT NULL,
    status text NOT NULL,
    input jsonb NOT NULL,
    correlation_id uuid NOT NULL,
    result jsonb,
    error text,
    pivoted boolean NOT NULL DEFAULT false,
    fencing_token bigint,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE INDEX instances_status ON __SCHEMA__.instances (status, updated_at);
CREATE INDEX instances_created ON __SCHEMA__.instances (created_at DESC);
CREATE INDEX instances_name ON __SCHEMA__.instances (name, version);

-- One row per journal entry; the entry itself is JSON (see sagas/serialize.py), kind and status are columns
-- for the operator's queries.
CREATE TABLE __SCHEMA__.steps (
    saga_id uuid NOT NULL REFERENCES __SCHEMA__.instances ON DELETE CASCADE,
    seq integer NOT NULL,
    kind text NOT NULL,
    status text NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (saga_id, seq)
);

CREATE TABLE __SCHEMA__.timers (
    timer_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    saga_id uuid NOT NULL,
    seq integer NOT NULL,
    kind text NOT NULL,
    attempt integer NOT NULL,
    due_at timestamptz NOT NULL
);

CREATE INDEX timers_due ON __SCHEMA__.timers (due_at, timer_id);

CREATE SEQUENCE __SCHEMA__.fencing_tokens;
CREATE SEQUENCE __SCHEMA__.line_positions;

CREATE TABLE __SCHEMA__.locks (
    resource text PRIMARY KEY,
    holder uuid,
    token bigint,
    expires_at timestamptz
);

CREATE INDEX locks_holder ON __SCHEMA__.locks (holder) WHERE holder IS NOT NULL;

CREATE TABLE __SCHEMA__.lock_line (
    saga_id uuid NOT NULL,
    resource text NOT NULL,
    position bigint NOT NULL,
    PRIMARY KEY (saga_id, resource)
);

CREATE INDEX lock_line_resource ON __SCHEMA__.lock_line (resource, position);

CREATE TABLE __SCHEMA__.events (
    event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    saga_id uuid NOT NULL,
    at timestamptz NOT NULL,
    kind text NOT NULL,
    detail jsonb NOT NULL
);

CREATE INDEX events_saga ON __SCHEMA__.events (saga_id, event_id);
