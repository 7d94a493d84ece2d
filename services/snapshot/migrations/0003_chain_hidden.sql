-- A deleted snapshot whose data a child still needs: Destroyed for users, its data kept until a coalesce merges
-- it into that child (DESIGN §5). False again once the data is merged or dropped.
ALTER TABLE __SCHEMA__.snapshots ADD COLUMN hidden boolean NOT NULL DEFAULT false;
CREATE INDEX ON __SCHEMA__.snapshots (volume_id) WHERE hidden;
