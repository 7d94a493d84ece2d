-- The API daemon owns only who may call it (keys, stored as SHA-256 of the key: a key is 256 random bits, so its
-- hash cannot be reversed or guessed), the console's sessions, and the operations it follows for its callers.
CREATE TABLE __SCHEMA__.keys (
    key_id uuid PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    key_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    revoked_at timestamptz
);

CREATE TABLE __SCHEMA__.sessions (
    session_hash text PRIMARY KEY,
    key_id uuid NOT NULL REFERENCES __SCHEMA__.keys,
    csrf_token text NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE TABLE __SCHEMA__.operations (
    operation_id uuid PRIMARY KEY,
    correlation_id uuid,
    kind text NOT NULL,
    target text NOT NULL,
    actor text NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    result jsonb,
    error jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX operations_correlation ON __SCHEMA__.operations (correlation_id);
