-- The transactional outbox, the inbox of processed messages and the journal of every message.
-- __SCHEMA__ is replaced by the migrator with a validated schema name.

CREATE TABLE __SCHEMA__.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id uuid NOT NULL,
    exchange text NOT NULL,
    routing_key text NOT NULL,
    type text NOT NULL,
    body bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}',
    correlation_id text,
    occurred_at timestamptz,
    app_id text,
    content_type text NOT NULL,
    reply_to text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text
);

-- The relay claims unsent rows by id; sent rows drop out of this index, so it stays as small as the backlog.
CREATE INDEX outbox_pending ON __SCHEMA__.outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent ON __SCHEMA__.outbox (sent_at) WHERE sent_at IS NOT NULL;

-- NOTIFY is delivered at commit, so a relay wakes exactly when new rows become visible, whatever their id.
CREATE FUNCTION __SCHEMA__.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('__SCHEMA___outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON __SCHEMA__.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION __SCHEMA__.outbox_notify();

CREATE TABLE __SCHEMA__.inbox (
    consumer text NOT NULL,
    message_id uuid NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

CREATE TABLE __SCHEMA__.journal (
    message_id uuid PRIMARY KEY,
    type text NOT NULL,
    version integer NOT NULL,
    correlation_id uuid NOT NULL,
    causation_id uuid,
    saga_id uuid,
    step integer,
    producer text NOT NULL,
    fencing_token bigint,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    headers jsonb NOT NULL DEFAULT '{}',
    payload jsonb NOT NULL
);

CREATE INDEX journal_correlation ON __SCHEMA__.journal (correlation_id, occurred_at);
CREATE INDEX journal_saga ON __SCHEMA__.journal (saga_id, occurred_at) WHERE saga_id IS NOT NULL;
CREATE INDEX journal_type ON __SCHEMA__.journal (type, occurred_at);
CREATE INDEX journal_occurred ON __SCHEMA__.journal (occurred_at);
