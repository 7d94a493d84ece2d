-- What the API changed itself, with who did it: key management, dead-letter re-drives and purges, operators'
-- saga actions. (Commands sent to the services are journaled by the bus with the caller as their producer.)
CREATE TABLE __SCHEMA__.audit (
    audit_id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_at ON __SCHEMA__.audit (at);
