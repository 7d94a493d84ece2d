-- The bridge's state: what CloudStack asked for (its inbox, keyed by the operation), every message received with
-- what the bridge made of it, CloudStack's reports of operations strata did not run, and the answers to publish
-- on CloudStack's exchange (its outbox).
CREATE TABLE __SCHEMA__.operations (
    operation_key text PRIMARY KEY,          -- base_key#generation
    base_key text NOT NULL,                  -- event type, entity and targets: what identifies the operation
    generation integer NOT NULL,             -- the same operation asked for again after the last one settled
    event text NOT NULL,
    entity text NOT NULL,
    entity_uuid uuid NOT NULL,
    request jsonb NOT NULL,                  -- user, account and entities, to answer with
    command_type text,
    correlation_id uuid,
    requested_at timestamptz NOT NULL,       -- CloudStack's eventDateTime of the first request
    opened_at timestamptz NOT NULL DEFAULT now(),
    outcome text,                            -- NULL while strata works on it; succeeded | failed
    reason text,
    settled_at timestamptz,
    cloudstack_failed boolean,               -- what CloudStack's own Completed said, if it sent one
    UNIQUE (base_key, generation)
);
CREATE INDEX operations_open ON __SCHEMA__.operations (entity_uuid) WHERE outcome IS NULL;
CREATE INDEX operations_correlation ON __SCHEMA__.operations (correlation_id);

CREATE TABLE __SCHEMA__.events (
    seq bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    routing_key text NOT NULL,
    category text,
    event text,
    status text,
    entity text,
    entity_uuid uuid,
    occurred_at timestamptz,
    operation_key text,
    outcome text NOT NULL,                   -- command_sent | duplicate | recorded | reconciled | disagreed |
                                             -- refused | ignored | dead_lettered
    correlation_id uuid,
    cloudstack_failed boolean NOT NULL DEFAULT false,
    detail text
);
CREATE INDEX events_entity ON __SCHEMA__.events (entity_uuid);

CREATE TABLE __SCHEMA__.reports (
    report_key text PRIMARY KEY,             -- base key, eventDateTime and verdict of a Completed
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE __SCHEMA__.transitions (
    resource_id uuid PRIMARY KEY,            -- the last transition recorded of each resource
    transition text NOT NULL
);

CREATE TABLE __SCHEMA__.answers (
    seq bigserial PRIMARY KEY,
    operation_key text NOT NULL UNIQUE,
    routing_key text NOT NULL,
    body bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz
);
CREATE INDEX answers_unsent ON __SCHEMA__.answers (seq) WHERE sent_at IS NULL;
