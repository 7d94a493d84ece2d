-- lock_saga(saga_id): lock a saga's row, then read it and its steps, in one round trip.
-- A plpgsql function, because each statement in it takes a new snapshot (READ COMMITTED): the steps are read after
-- the row lock was granted, so they include whatever the previous holder of the lock committed. (One SELECT that
-- both waits for the lock and reads the steps would read them from the snapshot it took before waiting.)

CREATE FUNCTION __SCHEMA__.lock_saga(wanted uuid)
RETURNS TABLE (
    saga_id uuid, name text, version integer, status text, input jsonb, correlation_id uuid, result jsonb,
    error text, pivoted boolean, fencing_token bigint, created_at timestamptz, updated_at timestamptz, steps json
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    PERFORM 1 FROM __SCHEMA__.instances AS i WHERE i.saga_id = wanted FOR UPDATE;
    RETURN QUERY
        SELECT i.saga_id, i.name, i.version, i.status, i.input, i.correlation_id, i.result, i.error, i.pivoted,
               i.fencing_token, i.created_at, i.updated_at,
               (SELECT coalesce(json_agg(s.record ORDER BY s.seq), '[]'::json)
                FROM __SCHEMA__.steps AS s WHERE s.saga_id = wanted)
        FROM __SCHEMA__.instances AS i WHERE i.saga_id = wanted;
END
$$;
