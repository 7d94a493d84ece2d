-- What the replay tool (services/replay) selects besides correlation, saga, type and time: every message that names
-- an entity (a volume, pool, snapshot, VM, backup or template id anywhere in its payload) and every message a service
-- produced. journal_named_ids lists the UUIDs a payload holds, at any depth, for a GIN index; IMMUTABLE because it
-- reads nothing but its argument.

CREATE FUNCTION __SCHEMA__.journal_named_ids(payload jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT named #>> '{}'), '{}')
    FROM jsonb_path_query(
        payload,
        'strict $.** ? (@.type() == "string" && @ like_regex "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")'
    ) AS named
$$;

CREATE INDEX journal_named ON __SCHEMA__.journal USING gin (__SCHEMA__.journal_named_ids(payload));
-- A producer is `service@host` (or `service` alone): the service is what an operator filters by.
CREATE INDEX journal_service ON __SCHEMA__.journal (split_part(producer, '@', 1), occurred_at);
