-- Exports of images to URLs (services/image/exports.py): claimed by a worker with a lease, run outside any
-- transaction, and recorded with their outcome. The URL may carry a token: it is kept here while the export runs
-- and cleared when it ends.
CREATE TABLE IF NOT EXISTS __SCHEMA__.exports (
    export_id uuid PRIMARY KEY,
    image_id uuid NOT NULL,
    store_id uuid NOT NULL,
    url text,
    state text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    lease_until timestamptz,
    request jsonb NOT NULL,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS exports_waiting ON __SCHEMA__.exports (updated_at) WHERE state IN ('PENDING', 'RUNNING');
