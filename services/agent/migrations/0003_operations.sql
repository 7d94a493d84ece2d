-- The agent's operations, one row per command (its message id, the idempotency key): its intent is committed
-- before the plugin call (state running), its result after it, with the inbox row (succeeded or failed). No
-- transaction stays open across the call; a command found finished is acked as a duplicate without running again.
CREATE TABLE IF NOT EXISTS __SCHEMA__.operations (
    command_id uuid PRIMARY KEY,
    command_type text NOT NULL,
    consumer text NOT NULL,
    state text NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
    attempts integer NOT NULL DEFAULT 1,
    outcome_type text,
    error_code text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS operations_running ON __SCHEMA__.operations (started_at) WHERE state = 'running';
