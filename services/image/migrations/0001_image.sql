-- The image service's own truth: image stores per zone, images (templates and ISOs), and each image's copy in
-- each store with CloudStack's download states.
CREATE TABLE __SCHEMA__.stores (
    store_id uuid PRIMARY KEY,
    name text NOT NULL,
    zone_id uuid NOT NULL,
    plugin text NOT NULL,
    -- The configuration with its secrets masked (for an operator's look) and sealed with the deployment key.
    config jsonb NOT NULL,
    sealed_config text NOT NULL,
    removed boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX stores_name ON __SCHEMA__.stores (zone_id, name) WHERE NOT removed;

CREATE TABLE __SCHEMA__.images (
    image_id uuid PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL,
    format text NOT NULL,
    zone_id uuid NOT NULL,
    url text NOT NULL,
    checksum text,
    size_bytes bigint,
    virtual_size_bytes bigint,
    -- Set when a delete was accepted: the worker removes the copies, then the row.
    deleting boolean NOT NULL DEFAULT false,
    -- Who asked for the registration or the delete (answered when the work ends): an Envelope's lineage, JSON.
    request jsonb NOT NULL,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX images_name ON __SCHEMA__.images (zone_id, kind, name) WHERE NOT deleting;

CREATE TABLE __SCHEMA__.copies (
    image_id uuid NOT NULL REFERENCES __SCHEMA__.images ON DELETE CASCADE,
    store_id uuid NOT NULL REFERENCES __SCHEMA__.stores,
    state text NOT NULL,
    done_bytes bigint NOT NULL DEFAULT 0,
    total_bytes bigint,
    attempts integer NOT NULL DEFAULT 0,
    error text,
    checksum text,
    -- A worker holds the copy until then; a copy in progress whose lease ran out (its worker died) is taken again.
    lease_until timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_id, store_id)
);
CREATE INDEX copies_work ON __SCHEMA__.copies (updated_at) WHERE state IN ('NOT_DOWNLOADED', 'DOWNLOAD_IN_PROGRESS');
