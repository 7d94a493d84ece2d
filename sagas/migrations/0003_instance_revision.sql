-- A revision per saga instance, raised by every write of the instance row, so that a coordinator may read a saga
-- without locking it, work on what it read, and commit only if nobody changed the saga meanwhile: the commit
-- locks the row and checks the revision first (expect_revision), in the same round trip as its writes.

ALTER TABLE __SCHEMA__.instances ADD COLUMN revision bigint NOT NULL DEFAULT 0;

-- Lock the saga's row and raise serialization_failure (40001) if its revision is not the one the caller read.
-- (SELECT ... FOR UPDATE that waited for the lock returns the row as its last holder committed it.)
CREATE FUNCTION __SCHEMA__.expect_revision(wanted uuid, expected bigint) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    found bigint;
BEGIN
    SELECT i.revision INTO found FROM __SCHEMA__.instances AS i WHERE i.saga_id = wanted FOR UPDATE;
    IF found IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'saga % changed since it was read (revision %, expected %)', wanted, found, expected
            USING ERRCODE = 'serialization_failure';
    END IF;
END
$$;
