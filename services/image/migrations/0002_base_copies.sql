-- Templates into primary: one base copy per (template, pool), and the volumes made on it (its references).
CREATE TABLE __SCHEMA__.base_copies (
    image_id uuid NOT NULL,
    pool_id uuid NOT NULL,
    base_volume_id uuid NOT NULL,
    host text,
    cluster_id text,
    ready boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_id, pool_id)
);

CREATE TABLE __SCHEMA__.base_users (
    volume_id uuid PRIMARY KEY,
    image_id uuid NOT NULL,
    pool_id uuid NOT NULL,
    created boolean NOT NULL DEFAULT false,
    FOREIGN KEY (image_id, pool_id) REFERENCES __SCHEMA__.base_copies
);
CREATE INDEX base_users_image ON __SCHEMA__.base_users (image_id);
