-- Whether a running operation can still end. `awaiting`: the types of the outcome events (success, failure) its
-- command ends with, when the API's consumer records them by correlation id: the row then ends whichever API
-- process is alive when the outcome arrives. NULL: the operation's work is its process's own (a pool settling, a
-- prune, an upload). `alive_at`: the last time the API process running the work said it still does (every
-- HEARTBEAT_SECONDS); a running row awaiting nothing that no process has touched for ABANDONED_AFTER belongs to a
-- process that stopped, and is reported failed (ABORTED) instead of running for ever.
ALTER TABLE __SCHEMA__.operations
    ADD COLUMN awaiting text[],
    ADD COLUMN alive_at timestamptz NOT NULL DEFAULT now();
