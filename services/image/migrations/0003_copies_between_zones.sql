-- Copies between zones: a copy fed from another store (not from the image's URL), answered to its own request.
ALTER TABLE __SCHEMA__.copies ADD COLUMN source_store_id uuid REFERENCES __SCHEMA__.stores;
ALTER TABLE __SCHEMA__.copies ADD COLUMN request jsonb;
